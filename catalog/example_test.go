package catalog_test

import (
	"fmt"

	"github.com/usertrace/usertrace/catalog"
)

var u8 = catalog.Type{Kind: catalog.Uint8}

var requestDone = &catalog.Event{
	ID: 1, Provider: "http", Name: "request_done", Level: catalog.LevelInfo,
	Fields: []catalog.Field{
		{Name: "method", Type: catalog.Type{Kind: catalog.Enum, Elem: &u8,
			Labels: []catalog.EnumLabel{{Value: 1, Label: "GET"}, {Value: 2, Label: "POST"}}}},
		{Name: "req", Type: catalog.Type{Kind: catalog.Struct, Fields: []catalog.Field{
			{Name: "path", Type: catalog.Type{Kind: catalog.String}},
			{Name: "size", Type: catalog.Type{Kind: catalog.Uint32}},
		}}},
		{Name: "retries", Type: catalog.Type{Kind: catalog.Sequence, Elem: &u8}},
	},
	Attrs: []catalog.Attr{{Key: "owner", Value: "net"}},
	File:  "server.go", Line: 42,
}

func ExampleAppendCatalog() {
	tick := &catalog.Event{ID: 2, Provider: "app", Name: "tick", Level: catalog.LevelDebug}
	b := catalog.AppendCatalog(nil, []*catalog.Event{requestDone, tick})

	d, err := catalog.DecodeCatalog(b)
	if err != nil {
		panic(err)
	}
	fmt.Printf("version %d, %d bytes, %d events\n", d.Version, len(b), len(d.Events))
	for _, e := range d.Events {
		fmt.Printf("%d %s level=%s fields=%d attrs=%v at %s:%d\n", e.ID, e.FullName(), e.Level, len(e.Fields), e.Attrs, e.File, e.Line)
	}
	// Output:
	// version 1, 237 bytes, 2 events
	// 1 http:request_done level=info fields=3 attrs=[{owner net}] at server.go:42
	// 2 app:tick level=debug fields=0 attrs=[] at :0
}

func ExampleDecodeCatalog() {
	b := catalog.AppendCatalog(nil, []*catalog.Event{requestDone})
	d, err := catalog.DecodeCatalog(b)
	if err != nil {
		panic(err)
	}
	fmt.Println(d.Events[0].FullName(), "skipped:", d.UnknownRecords, d.UnknownKinds, d.UnknownAttrs)

	// A cut catalog is refused with an error saying where.
	_, err = catalog.DecodeCatalog(b[:40])
	fmt.Println(err)
	// Output:
	// http:request_done skipped: 0 0 0
	// decode catalog: record 0 at byte 12: byte 13: record of 189 bytes, 23 left: corrupt input
}

func ExampleCursor() {
	var p []byte
	p = catalog.AppendUint8(p, 2) // method
	p = catalog.AppendString(p, "/index.html")
	p = catalog.AppendUint32(p, 512)
	p = catalog.AppendUint32(p, 2) // retries: two elements
	p = catalog.AppendUint8(p, 3)
	p = catalog.AppendUint8(p, 1)
	r := catalog.Record{Event: requestDone, Payload: p}

	var c catalog.Cursor
	var path []byte
	c.Reset(r)
	for c.Next() {
		path = c.AppendPath(path[:0])
		v := c.Value()
		switch v.Kind() {
		case catalog.Enum:
			fmt.Printf("%s (depth %d) = %s\n", path, c.Depth(), v.Label())
		case catalog.String:
			fmt.Printf("%s (depth %d) = %q\n", path, c.Depth(), v.Str())
		case catalog.Sequence:
			fmt.Printf("%s (depth %d) = %d elements, last %d\n", path, c.Depth(), v.Len(), v.Index(v.Len()-1).Uint64())
		default:
			fmt.Printf("%s (depth %d) = %d\n", path, c.Depth(), v.Uint64())
		}
	}
	if err := c.Err(); err != nil {
		panic(err)
	}
	fmt.Println(string(r.AppendText(nil)))
	// Output:
	// method (depth 0) = POST
	// req.path (depth 1) = "/index.html"
	// req.size (depth 1) = 512
	// retries (depth 0) = 2 elements, last 1
	// http:request_done: method=POST(2), req.path="/index.html", req.size=512, retries=[3, 1]
}

func ExampleRecord_Field() {
	p := catalog.AppendUint8(nil, 1)
	p = catalog.AppendString(p, "/")
	p = catalog.AppendUint32(p, 0)
	p = catalog.AppendUint32(p, 0)
	r := catalog.Record{Event: requestDone, Payload: p}
	m, _ := r.Field("method")
	req, _ := r.Field("req")
	path, _ := req.Field("path")
	fmt.Println(m.Label(), path.Str())
	// Output: GET /
}

func ExampleValidatePayload() {
	p := catalog.AppendUint8(nil, 1)
	p = catalog.AppendString(p, "/")
	fmt.Println(catalog.ValidatePayload(requestDone, p))
	// Output: read payload of http:request_done: field req.size at byte 3 of 3: value runs past the end of the payload: corrupt input
}
