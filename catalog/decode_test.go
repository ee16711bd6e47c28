package catalog

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestForwardCompatible builds a catalog as a later version might write it:
// a longer header, an unknown record tag, an attribute of an unknown kind,
// bytes appended to every record, types of unknown kinds.
func TestForwardCompatible(t *testing.T) {
	extra := []byte{0xaa, 0xbb} // appended by a "later version"
	fields := cat(u16le(3),
		field("a", typ(Uint8, extra), extra),
		field("m", typ(Enum, typ(Uint8), u16le(1), sized(u64le(1), str("ONE"), extra), extra)),
		field("s", typ(Struct, u16le(1), field("x", typ(Int32)))),
	)
	attrs := cat(u16le(3),
		attr(AttrString, str("k"), str("v"), extra),
		attr(77, []byte("a future attribute value")),
		attr(AttrString, str("k2"), str("v2")),
	)
	known := rec(TagEvent, eventBody(fields, attrs), extra)
	opaque := rec(TagEvent, eventBody(cat(u16le(2),
		field("a", typ(Uint8)),
		field("f", typ(Kind(250), []byte("whatever a kind-250 type holds"))),
	), u16le(0)))
	unknown := rec(99, []byte("a record of a later version"))
	b := cat(header(3, HeaderSize+4, 4, 1, 2, 3, 4), known, unknown, opaque, rec(98))

	d, err := DecodeCatalog(b)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != 3 || d.HeaderBytes != 4 || d.UnknownRecords != 2 || d.UnknownAttrs != 1 ||
		d.UnknownKinds != 1 || d.ExtraBytes != 6*len(extra) {
		t.Errorf("counts: %+v", *d)
	}
	if len(d.Events) != 2 {
		t.Fatalf("%d events, want 2", len(d.Events))
	}
	want := &Event{ID: 9, Provider: "p", Name: "e", Level: LevelInfo,
		Fields: []Field{
			{"a", Type{Kind: Uint8}},
			{"m", Type{Kind: Enum, Elem: &Type{Kind: Uint8}, Labels: []EnumLabel{{1, "ONE"}}}},
			{"s", Type{Kind: Struct, Fields: []Field{{"x", Type{Kind: Int32}}}}},
		},
		Attrs: []Attr{{"k", "v"}, {"k2", "v2"}},
	}
	if !reflect.DeepEqual(d.Events[0], want) {
		t.Errorf("event 0:\n got %+v\nwant %+v", d.Events[0], want)
	}
	want = &Event{ID: 9, Provider: "p", Name: "e", Level: LevelInfo, Opaque: true,
		Fields: []Field{{"a", Type{Kind: Uint8}}, {"f", Type{RawKind: 250}}}}
	if !reflect.DeepEqual(d.Events[1], want) {
		t.Errorf("event 1:\n got %+v\nwant %+v", d.Events[1], want)
	}

	// DecodeEvent skips an unknown record and tells its length.
	e, n, err := DecodeEvent(unknown)
	if e != nil || n != len(unknown) || err != nil {
		t.Errorf("DecodeEvent(unknown) = %v, %d, %v", e, n, err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := AppendCatalog(nil, testEvents())
	okField := field("a", typ(Uint8))
	event := func(fields []byte) []byte {
		return cat(header(1, HeaderSize, 1), rec(TagEvent, eventBody(fields, u16le(0))))
	}
	nest := typ(Uint8)
	for range 1000 {
		nest = typ(Struct, u16le(1), field("x", nest))
	}
	tests := []struct {
		name string
		in   []byte
		want string // in the message
	}{
		{"empty", nil, "shorter than the 12-byte header"},
		{"magic", cat([]byte("UTCX"), good[4:]), "magic"},
		{"version 0", header(0, HeaderSize, 0), "version 0"},
		{"short header", header(1, 8, 0), "header size 8"},
		{"long header", header(1, 200, 0), "header size 200"},
		{"count too large", header(1, HeaderSize, 1000, 1, 2, 3), "1000 records cannot fit"},
		{"missing record", cat(header(1, HeaderSize, 2), rec(98), []byte{1, 2, 3, 4, 5}), "record 1 at byte 17"},
		{"trailing", cat(good, []byte{0}), "1 bytes after the last of 5 records"},
		{"record length", cat(header(1, HeaderSize, 1), []byte{TagEvent}, u32le(100)), "record of 100 bytes, 0 left"},
		{"kind 0", event(cat(u16le(1), field("a", typ(KindInvalid)))), "kind 0"},
		{"field count", event(cat(u16le(300), okField)), "300 fields, at most 256"},
		{"field count fit", event(cat(u16le(200), okField)), "200 fields cannot fit"},
		{"name length", event(cat(u16le(1), field(strings.Repeat("x", 200), typ(Uint8)))), "field name of 200 bytes, at most 128"},
		{"bad name", event(cat(u16le(1), field("1x", typ(Uint8)))), `field name "1x" is not an identifier`},
		{"duplicate", event(cat(u16le(2), okField, okField)), `field "a" appears twice`},
		{"empty struct", event(cat(u16le(1), field("s", typ(Struct, u16le(0))))), "struct needs at least one field"},
		{"array of strings", event(cat(u16le(1), field("s", typ(Array, u32le(1), typ(String))))), "arrays hold scalars"},
		{"array len 0", event(cat(u16le(1), field("s", typ(Array, u32le(0), typ(Uint8))))), "array length 0"},
		{"enum base", event(cat(u16le(1), field("s", typ(Enum, typ(String), u16le(0))))), "enum needs an integer base"},
		{"type overruns field", event(cat(u16le(1), sized(str("a"), []byte{byte(Uint8)}, u32le(1)))), "type of 1 bytes, 0 left"},
		{"too deep", event(cat(u16le(1), field("s", nest))), "nested more than 8 deep"},
		{"struct 9 deep", func() []byte {
			t := typ(Uint8)
			for range MaxDepth + 1 {
				t = typ(Struct, u16le(1), field("x", t))
			}
			return event(cat(u16le(1), field("s", t)))
		}(), "nested more than 8 deep"},
		{"truncated", good[:len(good)-1], "record 4 at byte"},
		{"level", cat(header(1, HeaderSize, 1), rec(TagEvent, cat(u32le(1), []byte{9}, str("p"), str("e"), str(""), u32le(0), u16le(0), u16le(0)))), "level 9 out of range"},
		{"attr key", cat(header(1, HeaderSize, 1), rec(TagEvent, eventBody(u16le(0), cat(u16le(1), attr(AttrString, str(""), str("v")))))), "keys must be non-empty"},
		{"attr count", cat(header(1, HeaderSize, 1), rec(TagEvent, eventBody(u16le(0), cat(u16le(65), attr(AttrString, str("k"), str("v")))))), "65 attributes, at most 64"},
		{"labels", event(cat(u16le(1), field("m", typ(Enum, typ(Uint8), u16le(2000))))), "2000 enum labels, at most 1024"},
		{"opaque bad name", event(cat(u16le(1), field("-", typ(Kind(200))))), `field name "-" is not an identifier`},
	}
	for _, tt := range tests {
		d, err := DecodeCatalog(tt.in)
		if err == nil {
			t.Errorf("%s: decoded %+v, want an error", tt.name, d)
			continue
		}
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: %v does not wrap ErrCorrupt", tt.name, err)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "decode catalog: ") || !strings.Contains(msg, "byte ") || !strings.Contains(msg, tt.want) {
			t.Errorf("%s: error %q, want one saying where and %q", tt.name, msg, tt.want)
		}
	}
}

// TestDecodeEveryPrefix cuts a good catalog at every byte and flips every
// byte: decoding must fail or succeed, never panic, and what decodes must
// validate.
func TestDecodeEveryPrefix(t *testing.T) {
	good := AppendCatalog(nil, testEvents())
	for i := range good {
		if _, err := DecodeCatalog(good[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("prefix of %d bytes: %v", i, err)
		}
	}
	buf := bytes.Clone(good)
	for i := range buf {
		for _, x := range []byte{0, 1, 0x80, 0xff, good[i] + 1} {
			buf[i] = x
			checkDecode(t, buf)
		}
		buf[i] = good[i]
	}
}

// checkDecode is the fuzz property: DecodeCatalog never panics; what it
// decodes validates, and encodes and decodes again to the same events.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	d, err := DecodeCatalog(b)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) || !strings.HasPrefix(err.Error(), "decode catalog: ") {
			t.Fatalf("error %q", err)
		}
		return
	}
	for _, e := range d.Events {
		if err := validateDecoded(e); err != nil {
			t.Fatalf("decoded event does not validate: %v", err)
		}
		if !e.Opaque {
			if err := e.Validate(); err != nil {
				t.Fatalf("decoded event does not validate: %v", err)
			}
		}
	}
	enc := AppendCatalog(nil, d.Events)
	d2, err := DecodeCatalog(enc)
	if err != nil {
		t.Fatalf("re-encoded catalog does not decode: %v", err)
	}
	if !reflect.DeepEqual(d.Events, d2.Events) {
		t.Fatalf("re-encoded catalog decodes differently:\n%+v\n%+v", d.Events, d2.Events)
	}
	if d2.HeaderBytes+d2.UnknownRecords+d2.UnknownAttrs+d2.ExtraBytes != 0 || d2.UnknownKinds != d.UnknownKinds {
		t.Fatalf("re-encoded catalog has unknowns: %+v", d2)
	}
	if !bytes.Equal(AppendCatalog(nil, d2.Events), enc) {
		t.Fatalf("encoding is not stable")
	}
}

func FuzzDecodeCatalog(f *testing.F) {
	for _, seed := range decodeSeeds() {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		// DecodeEvent on the bytes after the header must not panic either.
		if len(b) > HeaderSize {
			if e, n, err := DecodeEvent(b[HeaderSize:]); err == nil && (n < recordHead || n > len(b)-HeaderSize) {
				t.Fatalf("DecodeEvent: n = %d for %d bytes (event %v)", n, len(b)-HeaderSize, e)
			}
		}
	})
}

// decodeSeeds are the in-code seeds of FuzzDecodeCatalog; TestFuzzCorpus
// writes them (and some cut ones) to testdata.
func decodeSeeds() [][]byte {
	all := AppendCatalog(nil, testEvents())
	var seeds [][]byte
	seeds = append(seeds, all, AppendCatalog(nil, nil))
	for _, e := range testEvents() {
		seeds = append(seeds, AppendCatalog(nil, []*Event{e}))
	}
	seeds = append(seeds, all[:HeaderSize+40], all[:len(all)/2], all[:len(all)-3])
	return seeds
}

func TestDecodeAllocationBounded(t *testing.T) {
	// A short input that announces much: the decoder must refuse before
	// allocating for the announcement.
	in := event(cat(u16le(256), okFieldBytes()))
	allocs := testing.AllocsPerRun(10, func() { _, _ = DecodeCatalog(in) })
	if allocs > 20 {
		t.Errorf("%v allocations to reject a short catalog", allocs)
	}
}

func event(fields []byte) []byte {
	return cat(header(1, HeaderSize, 1), rec(TagEvent, eventBody(fields, u16le(0))))
}

func okFieldBytes() []byte { return field("a", typ(Uint8)) }
