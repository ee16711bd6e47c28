package catalog

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// Test events covering every kind. They are shared by the decoder, cursor
// and text tests and by the fuzz targets.

var (
	u8T   = Type{Kind: Uint8}
	u32T  = Type{Kind: Uint32}
	i16T  = Type{Kind: Int16}
	i64T  = Type{Kind: Int64}
	boolT = Type{Kind: Bool}
)

// methodT is an enum with labels over uint8.
var methodT = Type{Kind: Enum, Elem: &u8T, Labels: []EnumLabel{{1, "GET"}, {2, "POST"}}}

// signT is an enum over int64 with a negative label.
var signT = Type{Kind: Enum, Elem: &i64T, Labels: []EnumLabel{{-1, "NEG"}, {0, "ZERO"}, {1, "POS"}}}

func scalarsEvent() *Event {
	return &Event{
		ID: 1, Provider: "test", Name: "scalars", Level: LevelDebug,
		Fields: []Field{
			{"b", Type{Kind: Bool}},
			{"i8", Type{Kind: Int8}},
			{"i16", Type{Kind: Int16}},
			{"i32", Type{Kind: Int32}},
			{"i64", Type{Kind: Int64}},
			{"u8", Type{Kind: Uint8}},
			{"u16", Type{Kind: Uint16}},
			{"u32", Type{Kind: Uint32}},
			{"u64", Type{Kind: Uint64}},
			{"f32", Type{Kind: Float32}},
			{"f64", Type{Kind: Float64}},
			{"s", Type{Kind: String}},
			{"raw", Type{Kind: Bytes}},
			{"dur", Type{Kind: Duration}},
			{"t", Type{Kind: Time}},
		},
		File: "catalog/encoding_test.go", Line: 30,
	}
}

func requestEvent() *Event {
	return &Event{
		ID: 2, Provider: "http", Name: "request_done", Level: LevelInfo,
		Fields: []Field{
			{"method", methodT},
			{"req", Type{Kind: Struct, Fields: []Field{
				{"path", Type{Kind: String}},
				{"hdr", Type{Kind: Struct, Fields: []Field{
					{"n", Type{Kind: Uint16}},
					{"sign", signT},
				}}},
				{"size", Type{Kind: Uint32}},
			}}},
			{"pair", Type{Kind: Array, Len: 2, Elem: &u32T}},
			{"deltas", Type{Kind: Sequence, Elem: &i16T}},
			{"flags", Type{Kind: Sequence, Elem: &boolT}},
			{"methods", Type{Kind: Array, Len: 3, Elem: &methodT}},
			{"status", Type{Kind: Uint16}},
		},
		Attrs: []Attr{{"owner", "net"}, {"stability", ""}},
		File:  "net/http/server.go", Line: 1234,
	}
}

func emptyEvent() *Event {
	return &Event{ID: 3, Provider: "app", Name: "tick", Level: LevelEmergency}
}

// opaqueEvent has fields of kinds this version does not know, as a decoder
// would leave them.
func opaqueEvent() *Event {
	unknown := Type{RawKind: 200}
	return &Event{
		ID: 4, Provider: "future", Name: "thing", Level: LevelWarning, Opaque: true,
		Fields: []Field{
			{"a", Type{Kind: Uint8}},
			{"b", unknown},
			{"c", Type{Kind: Array, Len: 4, Elem: &Type{RawKind: 99}}},
			{"d", Type{Kind: Struct, Fields: []Field{{"x", unknown}}}},
			{"e", Type{Kind: Enum, Elem: &Type{RawKind: 42}, Labels: []EnumLabel{{7, "SEVEN"}}}},
		},
	}
}

// deepEvent nests structs as deep as Validate allows.
func deepEvent() *Event {
	t := Type{Kind: Uint8}
	for range MaxDepth {
		t = Type{Kind: Struct, Fields: []Field{{"in", t}}}
	}
	return &Event{ID: 5, Provider: "test", Name: "deep", Level: LevelInfo, Fields: []Field{{"top", t}}}
}

func testEvents() []*Event {
	return []*Event{scalarsEvent(), requestEvent(), emptyEvent(), opaqueEvent(), deepEvent()}
}

func TestTestEventsValid(t *testing.T) {
	for _, e := range testEvents() {
		if e.Opaque {
			continue
		}
		if err := e.Validate(); err != nil {
			t.Errorf("%s: %v", e.FullName(), err)
		}
	}
	if err := validateDecoded(opaqueEvent()); err != nil {
		t.Errorf("opaque event: %v", err)
	}
}

func TestRoundTripCatalog(t *testing.T) {
	events := testEvents()
	enc := AppendCatalog(nil, events)
	d, err := DecodeCatalog(enc)
	if err != nil {
		t.Fatal(err)
	}
	if d.Version != Version {
		t.Errorf("version %d, want %d", d.Version, Version)
	}
	if !reflect.DeepEqual(d.Events, events) {
		t.Errorf("decoded events differ:\n got %+v\nwant %+v", d.Events, events)
	}
	want := Decoded{Version: Version, Events: d.Events, UnknownKinds: 4}
	if !reflect.DeepEqual(*d, want) {
		t.Errorf("decoded %+v, want %+v", *d, want)
	}
	// Re-encoding gives the same bytes.
	if again := AppendCatalog(nil, d.Events); !bytes.Equal(again, enc) {
		t.Errorf("re-encoding differs")
	}
}

func TestRoundTripEvent(t *testing.T) {
	for _, e := range testEvents() {
		prefix := []byte("junk")
		enc := AppendEvent(prefix, e)
		if !bytes.Equal(enc[:4], prefix) {
			t.Fatal("AppendEvent changed the bytes before it")
		}
		rec := enc[4:]
		got, n, err := DecodeEvent(append(rec, 0xff, 0xee)) // bytes after the record are left alone
		if err != nil {
			t.Fatalf("%s: %v", e.FullName(), err)
		}
		if n != len(rec) {
			t.Errorf("%s: n = %d, want %d", e.FullName(), n, len(rec))
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("%s: decoded\n %+v\nwant %+v", e.FullName(), got, e)
		}
	}
}

// TestEveryKind checks that each kind survives a round trip on its own, as
// a field, an array element and a sequence element where allowed.
func TestEveryKind(t *testing.T) {
	for k := Bool; k < kindEnd; k++ {
		var typ Type
		switch k {
		case Enum:
			typ = methodT
		case Array:
			typ = Type{Kind: Array, Len: 3, Elem: &u8T}
		case Sequence:
			typ = Type{Kind: Sequence, Elem: &methodT}
		case Struct:
			typ = Type{Kind: Struct, Fields: []Field{{"x", u8T}}}
		default:
			typ = Type{Kind: k}
		}
		fields := []Field{{"v", typ}}
		if k.IsScalar() {
			fields = append(fields,
				Field{"arr", Type{Kind: Array, Len: 1, Elem: &Type{Kind: k}}},
				Field{"seq", Type{Kind: Sequence, Elem: &Type{Kind: k}}})
		}
		e := &Event{ID: uint32(k), Provider: "kinds", Name: k.String(), Fields: fields}
		if err := e.Validate(); err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		d, err := DecodeCatalog(AppendCatalog(nil, []*Event{e}))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		if len(d.Events) != 1 || !reflect.DeepEqual(d.Events[0], e) {
			t.Errorf("%s: got %+v", k, d.Events)
		}
	}
}

func TestAppendCatalogSkipsNil(t *testing.T) {
	d, err := DecodeCatalog(AppendCatalog(nil, []*Event{nil, emptyEvent(), nil}))
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Events) != 1 {
		t.Errorf("%d events, want 1", len(d.Events))
	}
	d, err = DecodeCatalog(AppendCatalog(nil, nil))
	if err != nil || len(d.Events) != 0 {
		t.Errorf("empty catalog: %v, %v", d, err)
	}
}

// TestEncodingLayout checks AppendEvent against a hand-built encoding that
// follows docs/description-abi.md, so that the doc and the code agree.
func TestEncodingLayout(t *testing.T) {
	e := &Event{
		ID: 7, Provider: "app", Name: "hello", Level: LevelInfo,
		Fields: []Field{
			{"n", Type{Kind: Uint32}},
			{"m", methodT},
			{"a", Type{Kind: Array, Len: 2, Elem: &u8T}},
			{"s", Type{Kind: Struct, Fields: []Field{{"q", Type{Kind: Sequence, Elem: &u8T}}}}},
		},
		Attrs: []Attr{{"k", "v"}},
		File:  "main.go", Line: 12,
	}
	want := rec(TagEvent,
		u32le(7), []byte{byte(LevelInfo)}, str("app"), str("hello"), str("main.go"), u32le(12),
		u16le(4),
		field("n", typ(Uint32)),
		field("m", typ(Enum, typ(Uint8), u16le(2), label(1, "GET"), label(2, "POST"))),
		field("a", typ(Array, u32le(2), typ(Uint8))),
		field("s", typ(Struct, u16le(1), field("q", typ(Sequence, typ(Uint8))))),
		u16le(1), attr(AttrString, str("k"), str("v")),
	)
	if got := AppendEvent(nil, e); !bytes.Equal(got, want) {
		t.Errorf("AppendEvent:\n got % x\nwant % x", got, want)
	}
	hdr := cat([]byte(Magic), u16le(1), u16le(12), u32le(1))
	if got := AppendCatalog(nil, []*Event{e}); !bytes.Equal(got, cat(hdr, want)) {
		t.Errorf("AppendCatalog:\n got % x\nwant % x", got, cat(hdr, want))
	}
}

// A tiny hand encoder following the doc, for building what AppendEvent
// never writes (unknown tags, kinds, appended bytes, corruption).

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func u16le(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }
func u32le(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func u64le(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

func str(s string) []byte { return cat(u16le(uint16(len(s))), []byte(s)) }

// sized prefixes the parts with their u32 length.
func sized(parts ...[]byte) []byte {
	body := cat(parts...)
	return cat(u32le(uint32(len(body))), body)
}

func rec(tag byte, parts ...[]byte) []byte { return cat([]byte{tag}, sized(parts...)) }

func typ(k Kind, body ...[]byte) []byte { return cat([]byte{byte(k)}, sized(body...)) }

func field(name string, typ []byte, extra ...[]byte) []byte {
	return sized(append([][]byte{str(name), typ}, extra...)...)
}

func label(v int64, l string) []byte { return sized(u64le(uint64(v)), str(l)) }

func attr(kind byte, parts ...[]byte) []byte { return sized(append([][]byte{{kind}}, parts...)...) }

func header(version, size uint16, count uint32, extra ...byte) []byte {
	return cat([]byte(Magic), u16le(version), u16le(size), u32le(count), extra)
}

// eventBody is a minimal valid event body with the given fields and
// attributes (already encoded, counts included).
func eventBody(fields, attrs []byte) []byte {
	return cat(u32le(9), []byte{byte(LevelInfo)}, str("p"), str("e"), str(""), u32le(0), fields, attrs)
}

func TestPayloadAppend(t *testing.T) {
	var b []byte
	b = AppendBool(b, true)
	b = AppendBool(b, false)
	b = AppendInt8(b, -2)
	b = AppendInt16(b, -3)
	b = AppendInt32(b, -4)
	b = AppendInt64(b, -5)
	b = AppendUint8(b, 6)
	b = AppendUint16(b, 0x0708)
	b = AppendUint32(b, 0x090a0b0c)
	b = AppendUint64(b, 0x0102030405060708)
	b = AppendFloat32(b, 1.5)
	b = AppendFloat64(b, -2.25)
	b = AppendString(b, "hi\x00there")
	b = AppendString(b, "")
	b = AppendBytes(b, []byte{0, 1})
	b = AppendDuration(b, 3*time.Nanosecond)
	b = AppendTime(b, time.Unix(0, 258))
	want := cat(
		[]byte{1, 0, 0xfe}, u16le(0xfffd), u32le(0xfffffffc), u64le(math.MaxUint64-4),
		[]byte{6}, u16le(0x0708), u32le(0x090a0b0c), u64le(0x0102030405060708),
		u32le(math.Float32bits(1.5)), u64le(math.Float64bits(-2.25)),
		[]byte("hi\x00"), []byte{0}, u32le(2), []byte{0, 1}, u64le(3), u64le(258),
	)
	if !bytes.Equal(b, want) {
		t.Errorf("got  % x\nwant % x", b, want)
	}
}

// TestEncodeOddEvents: AppendEvent writes events that break the rules
// without panicking, and decoders refuse or trim them as documented.
func TestEncodeOddEvents(t *testing.T) {
	long := strings.Repeat("d/", 40000) + "main.go"
	e := emptyEvent()
	e.File = long
	d, err := DecodeCatalog(AppendCatalog(nil, []*Event{e}))
	if err != nil {
		t.Fatal(err)
	}
	if f := d.Events[0].File; len(f) != math.MaxUint16 || !strings.HasSuffix(long, f) {
		t.Errorf("file of %d bytes, want the last 65535 of %d", len(f), len(long))
	}

	for _, odd := range []*Event{
		{Provider: strings.Repeat("p", 70000), Name: "n"},
		{Provider: "p", Name: "n", Fields: []Field{{"a", Type{Kind: Array, Len: 2}}}},
		{Provider: "p", Name: "n", Attrs: make([]Attr, 70000)},
		{Provider: "p", Name: "n", Fields: make([]Field, 70000)},
		{Provider: "p", Name: "n", Fields: []Field{{"e", Type{Kind: Enum, Elem: &u8T, Labels: make([]EnumLabel, 70000)}}}},
	} {
		if _, err := DecodeCatalog(AppendCatalog(nil, []*Event{odd})); !errors.Is(err, ErrCorrupt) {
			t.Errorf("odd event decoded: %v", err)
		}
	}
	if _, _, err := DecodeEvent([]byte{TagEvent, 1, 0, 0, 0, 0}); err == nil || !strings.HasPrefix(err.Error(), "decode event: ") {
		t.Errorf("DecodeEvent of a cut event: %v", err)
	}
}
