package catalog

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

var testTime = time.Date(2026, 1, 2, 3, 4, 5, 500_000_000, time.UTC)

func scalarsPayload() []byte {
	var p []byte
	p = AppendBool(p, true)
	p = AppendInt8(p, -8)
	p = AppendInt16(p, -16)
	p = AppendInt32(p, -32)
	p = AppendInt64(p, math.MinInt64)
	p = AppendUint8(p, 8)
	p = AppendUint16(p, 16)
	p = AppendUint32(p, 32)
	p = AppendUint64(p, math.MaxUint64)
	p = AppendFloat32(p, 1.5)
	p = AppendFloat64(p, -0.1)
	p = AppendString(p, "hé \"x\"\n")
	p = AppendBytes(p, []byte{0xde, 0xad, 0x00})
	p = AppendDuration(p, 1500*time.Microsecond)
	p = AppendTime(p, testTime)
	return p
}

func requestPayload() []byte {
	var p []byte
	p = AppendUint8(p, 2) // method POST
	p = AppendString(p, "/index.html")
	p = AppendUint16(p, 3)
	p = AppendInt64(p, -1) // sign NEG
	p = AppendUint32(p, 4096)
	p = AppendUint32(p, 10) // pair
	p = AppendUint32(p, 20)
	p = AppendUint32(p, 3) // deltas
	p = AppendInt16(p, -1)
	p = AppendInt16(p, 0)
	p = AppendInt16(p, 300)
	p = AppendUint32(p, 0) // flags: empty
	p = AppendUint8(p, 1)  // methods
	p = AppendUint8(p, 9)
	p = AppendUint8(p, 2)
	p = AppendUint16(p, 200) // status
	return p
}

func deepPayload() []byte { return []byte{42} }

func TestCursorScalars(t *testing.T) {
	r := Record{Event: scalarsEvent(), Payload: scalarsPayload()}
	var c Cursor
	c.Reset(r)
	next := func(name string, k Kind) Value {
		t.Helper()
		if !c.Next() {
			t.Fatalf("no field %s: %v", name, c.Err())
		}
		if c.Field().Name != name || c.Value().Kind() != k || c.Depth() != 0 {
			t.Fatalf("field %s %s depth %d, want %s %s", c.Field().Name, c.Value().Kind(), c.Depth(), name, k)
		}
		return c.Value()
	}
	if v := next("b", Bool); !v.Bool() || v.Int64() != 1 {
		t.Errorf("b = %v", v.Bool())
	}
	if v := next("i8", Int8); v.Int64() != -8 || v.Uint64() != math.MaxUint64-7 {
		t.Errorf("i8 = %d", v.Int64())
	}
	if v := next("i16", Int16); v.Int64() != -16 {
		t.Errorf("i16 = %d", v.Int64())
	}
	if v := next("i32", Int32); v.Int64() != -32 {
		t.Errorf("i32 = %d", v.Int64())
	}
	if v := next("i64", Int64); v.Int64() != math.MinInt64 {
		t.Errorf("i64 = %d", v.Int64())
	}
	if v := next("u8", Uint8); v.Uint64() != 8 {
		t.Errorf("u8 = %d", v.Uint64())
	}
	if v := next("u16", Uint16); v.Uint64() != 16 {
		t.Errorf("u16 = %d", v.Uint64())
	}
	if v := next("u32", Uint32); v.Uint64() != 32 {
		t.Errorf("u32 = %d", v.Uint64())
	}
	if v := next("u64", Uint64); v.Uint64() != math.MaxUint64 || v.Int64() != -1 {
		t.Errorf("u64 = %d", v.Uint64())
	}
	if v := next("f32", Float32); v.Float64() != 1.5 {
		t.Errorf("f32 = %v", v.Float64())
	}
	if v := next("f64", Float64); v.Float64() != -0.1 || v.Int64() != 0 {
		t.Errorf("f64 = %v", v.Float64())
	}
	if v := next("s", String); v.Str() != "hé \"x\"\n" || string(v.Bytes()) != v.Str() {
		t.Errorf("s = %q", v.Str())
	}
	if v := next("raw", Bytes); !bytes.Equal(v.Bytes(), []byte{0xde, 0xad, 0}) {
		t.Errorf("raw = %x", v.Bytes())
	}
	if v := next("dur", Duration); v.Duration() != 1500*time.Microsecond {
		t.Errorf("dur = %v", v.Duration())
	}
	if v := next("t", Time); !v.Time().Equal(testTime) || v.Time().Location() != time.UTC {
		t.Errorf("t = %v", v.Time())
	}
	if c.Offset() != len(r.Payload) {
		t.Errorf("Offset %d after the last field, want %d", c.Offset(), len(r.Payload))
	}
	if c.Next() || c.Err() != nil {
		t.Errorf("after the last field: Next true or Err %v", c.Err())
	}
	if c.Next() {
		t.Error("Next true after the end")
	}
}

func TestCursorNested(t *testing.T) {
	r := Record{Event: requestEvent(), Payload: requestPayload()}
	type leaf struct {
		path  string
		depth int
		kind  Kind
	}
	want := []leaf{
		{"method", 0, Enum},
		{"req.path", 1, String},
		{"req.hdr.n", 2, Uint16},
		{"req.hdr.sign", 2, Enum},
		{"req.size", 1, Uint32},
		{"pair", 0, Array},
		{"deltas", 0, Sequence},
		{"flags", 0, Sequence},
		{"methods", 0, Array},
		{"status", 0, Uint16},
	}
	var c Cursor
	c.Reset(r)
	var got []leaf
	var vals []Value
	for c.Next() {
		got = append(got, leaf{string(c.AppendPath(nil)), c.Depth(), c.Value().Kind()})
		vals = append(vals, c.Value())
	}
	if c.Err() != nil {
		t.Fatal(c.Err())
	}
	if len(got) != len(want) {
		t.Fatalf("leaves %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("leaf %d: %v, want %v", i, got[i], want[i])
		}
	}
	if v := vals[0]; v.Label() != "POST" || v.Uint64() != 2 {
		t.Errorf("method = %s(%d)", v.Label(), v.Uint64())
	}
	if v := vals[3]; v.Label() != "NEG" || v.Int64() != -1 {
		t.Errorf("sign = %s(%d)", v.Label(), v.Int64())
	}
	if v := vals[5]; v.Len() != 2 || v.Index(0).Uint64() != 10 || v.Index(1).Uint64() != 20 ||
		v.Index(2).Kind() != KindInvalid || v.Index(-1).Kind() != KindInvalid {
		t.Errorf("pair: len %d", v.Len())
	}
	if v := vals[6]; v.Len() != 3 || v.Index(0).Int64() != -1 || v.Index(2).Int64() != 300 || v.Index(2).Kind() != Int16 {
		t.Errorf("deltas: len %d", v.Len())
	}
	if v := vals[7]; v.Len() != 0 || v.Index(0).Kind() != KindInvalid {
		t.Errorf("flags: len %d", v.Len())
	}
	if v := vals[8]; v.Index(0).Label() != "GET" || v.Index(1).Label() != "" || v.Index(1).Uint64() != 9 {
		t.Errorf("methods: %q %q", v.Index(0).Label(), v.Index(1).Label())
	}

	// Record.Field finds top-level fields, and struct members through them.
	if v, ok := r.Field("status"); !ok || v.Uint64() != 200 {
		t.Errorf("Field(status) = %v, %v", v.Uint64(), ok)
	}
	req, ok := r.Field("req")
	if !ok || req.Kind() != Struct {
		t.Fatalf("Field(req) = %v, %v", req.Kind(), ok)
	}
	hdr, _ := req.Field("hdr")
	if v, ok := hdr.Field("sign"); !ok || v.Label() != "NEG" {
		t.Errorf("req.hdr.sign = %q, %v", v.Label(), ok)
	}
	if _, ok := r.Field("nope"); ok {
		t.Error("Field(nope) found")
	}
	if _, ok := req.Field("status"); ok {
		t.Error("req.Field(status) found")
	}
	if _, ok := (Record{Event: requestEvent(), Payload: requestPayload()[:3]}).Field("status"); ok {
		t.Error("Field(status) found in a cut payload")
	}
}

func TestCursorDeep(t *testing.T) {
	var c Cursor
	c.Reset(Record{Event: deepEvent(), Payload: deepPayload()})
	if !c.Next() {
		t.Fatal(c.Err())
	}
	want := "top" + strings.Repeat(".in", MaxDepth)
	if p := string(c.AppendPath(nil)); p != want || c.Depth() != MaxDepth || c.Value().Uint64() != 42 {
		t.Errorf("%s depth %d = %d", p, c.Depth(), c.Value().Uint64())
	}
	if c.Next() || c.Err() != nil {
		t.Errorf("Next after the leaf: %v", c.Err())
	}
}

func TestZeroValues(t *testing.T) {
	var v Value
	if v.Kind() != KindInvalid || v.Bool() || v.Int64() != 0 || v.Uint64() != 0 || v.Float64() != 0 ||
		v.Str() != "" || v.Bytes() != nil || v.Duration() != 0 || !v.Time().IsZero() || v.Label() != "" ||
		v.Len() != 0 || v.Index(0).Kind() != KindInvalid || v.Type() != nil {
		t.Error("zero Value is not zero")
	}
	if _, ok := v.Field("x"); ok {
		t.Error("zero Value has a field")
	}
	var c Cursor
	if c.Next() || c.Err() != nil || c.Field() != nil || c.AppendPath(nil) != nil {
		t.Error("zero Cursor yields something")
	}
	// Accessors of another kind return zero values.
	r := Record{Event: scalarsEvent(), Payload: scalarsPayload()}
	s, _ := r.Field("s")
	if s.Int64() != 0 || s.Duration() != 0 || s.Label() != "" || s.Len() != 0 || s.Bool() {
		t.Error("string value reads as something else")
	}
	u, _ := r.Field("u8")
	if u.Str() != "" || u.Bytes() != nil || !u.Time().IsZero() {
		t.Error("uint8 value reads as something else")
	}
}

func TestCursorErrors(t *testing.T) {
	req := requestEvent()
	good := requestPayload()
	tests := []struct {
		name string
		e    *Event
		p    []byte
		want string
	}{
		{"nil event", nil, nil, "record without an event"},
		{"opaque", opaqueEvent(), []byte{1}, "opaque"},
		{"empty", req, nil, "field method at byte 0 of 0: value runs past the end"},
		{"trailing", req, append(bytes.Clone(good), 0), "byte 54 of 55: bytes left after the last field"},
		{"no NUL", req, []byte{1, 'a', 'b'}, "field req.path at byte 1 of 3: string without its NUL"},
		{"sequence count", req, cat(good[:35], u32le(math.MaxUint32), good[39:]), "field deltas at byte 35 of 54: array runs past the end"},
		{"sequence cut", req, good[:37], "field deltas at byte 35 of 37: sequence count runs past"},
		{"bytes length", scalarsEvent(), cat(scalarsPayload()[:52], u32le(1<<31)), "field raw at byte 52 of 56: bytes run past the end"},
		{"bytes cut", scalarsEvent(), scalarsPayload()[:54], "field raw at byte 52 of 54: bytes length runs past"},
		{"enum without base", &Event{Provider: "p", Name: "n", Fields: []Field{{"e", Type{Kind: Enum}}}}, []byte{1}, "enum without an integer base"},
		{"array of strings", &Event{Provider: "p", Name: "n", Fields: []Field{{"a", Type{Kind: Array, Len: 1, Elem: &Type{Kind: String}}}}}, []byte{0}, "array of a type without a fixed size"},
		{"unknown kind", &Event{Provider: "p", Name: "n", Fields: []Field{{"a", Type{Kind: 99}}}}, []byte{0}, "type of unknown kind"},
		{"too deep", tooDeepEvent(), []byte{0}, "structs nested too deep"},
	}
	for _, tt := range tests {
		var c Cursor
		c.Reset(Record{Event: tt.e, Payload: tt.p})
		for c.Next() {
		}
		err := c.Err()
		if err == nil || !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one wrapping ErrCorrupt saying %q", tt.name, err, tt.want)
		}
		if c.Next() || c.Field() != nil {
			t.Errorf("%s: Next true after an error", tt.name)
		}
		if tt.e != nil {
			if err2 := ValidatePayload(tt.e, tt.p); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("%s: ValidatePayload says %v, Cursor %v", tt.name, err2, err)
			}
		}
	}
}

// tooDeepEvent nests structs deeper than a Cursor can follow (Validate
// rejects it; a hand-made description might not have been validated). The
// struct lists itself as its own member: a cycle.
func tooDeepEvent() *Event {
	fs := make([]Field, 1)
	fs[0] = Field{"x", Type{Kind: Struct, Fields: fs}}
	return &Event{Provider: "p", Name: "n", Fields: fs}
}

func TestValidatePayload(t *testing.T) {
	for _, tc := range []struct {
		e *Event
		p []byte
	}{
		{scalarsEvent(), scalarsPayload()},
		{requestEvent(), requestPayload()},
		{deepEvent(), deepPayload()},
		{emptyEvent(), nil},
	} {
		if err := ValidatePayload(tc.e, tc.p); err != nil {
			t.Errorf("%s: %v", tc.e.FullName(), err)
		}
		// Every cut payload is refused, and so is every longer one.
		for i := range tc.p {
			if err := ValidatePayload(tc.e, tc.p[:i]); !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s cut at %d: %v", tc.e.FullName(), i, err)
			}
		}
		if err := ValidatePayload(tc.e, append(bytes.Clone(tc.p), 0)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s with a byte more: %v", tc.e.FullName(), err)
		}
	}
	bad := scalarsPayload()
	bad[0] = 2
	if err := ValidatePayload(scalarsEvent(), bad); err == nil || !strings.Contains(err.Error(), "field b at byte 0 of 75: bool neither 0 nor 1") {
		t.Errorf("bool 2: %v", err)
	}
	flags := &Event{Provider: "p", Name: "n", Fields: []Field{{"f", Type{Kind: Array, Len: 3, Elem: &boolT}}}}
	if err := ValidatePayload(flags, []byte{1, 0, 3}); err == nil || !strings.Contains(err.Error(), "field f at byte 2 of 3: bool neither") {
		t.Errorf("bool 3 in an array: %v", err)
	}
}

func TestCursorAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters allocate")
	}
	r := Record{Event: requestEvent(), Payload: requestPayload()}
	path := make([]byte, 0, 64)
	var sink uint64
	allocs := testing.AllocsPerRun(100, func() {
		var c Cursor
		c.Reset(r)
		for c.Next() {
			path = c.AppendPath(path[:0])
			v := c.Value()
			sink += v.Uint64() + uint64(len(v.Str())+len(v.Label())+c.Depth())
			for i := 0; i < v.Len(); i++ {
				sink += v.Index(i).Uint64()
			}
		}
		if c.Err() != nil {
			panic(c.Err())
		}
		if v, ok := r.Field("status"); ok {
			sink += v.Uint64()
		}
		if ValidatePayload(r.Event, r.Payload) != nil {
			panic("invalid")
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per record, want 0", allocs)
	}
	_ = sink
}

// appendValues re-encodes what a Cursor reads, with the payload helpers.
func appendValues(t *testing.T, b []byte, r Record) []byte {
	var c Cursor
	c.Reset(r)
	for c.Next() {
		v := c.Value()
		switch v.Kind() {
		case Sequence:
			b = AppendUint32(b, uint32(v.Len()))
			fallthrough
		case Array:
			for i := range v.Len() {
				b = appendValue(b, v.Index(i))
			}
		default:
			b = appendValue(b, v)
		}
	}
	if err := c.Err(); err != nil {
		t.Fatalf("cursor: %v", err)
	}
	return b
}

func appendValue(b []byte, v Value) []byte {
	k := v.Kind()
	if k == Enum {
		k = v.Type().Elem.Kind
	}
	switch k {
	case Bool:
		return AppendBool(b, v.Bool())
	case Int8:
		return AppendInt8(b, int8(v.Int64()))
	case Int16:
		return AppendInt16(b, int16(v.Int64()))
	case Int32:
		return AppendInt32(b, int32(v.Int64()))
	case Int64:
		return AppendInt64(b, v.Int64())
	case Uint8:
		return AppendUint8(b, uint8(v.Uint64()))
	case Uint16:
		return AppendUint16(b, uint16(v.Uint64()))
	case Uint32:
		return AppendUint32(b, uint32(v.Uint64()))
	case Uint64:
		return AppendUint64(b, v.Uint64())
	case Float32:
		return AppendFloat32(b, math.Float32frombits(uint32(v.floatBits())))
	case Float64:
		return AppendFloat64(b, math.Float64frombits(v.floatBits()))
	case String:
		return AppendString(b, v.Str())
	case Bytes:
		return AppendBytes(b, v.Bytes())
	case Duration:
		return AppendDuration(b, v.Duration())
	case Time:
		return AppendTime(b, v.Time())
	}
	panic("appendValue: " + k.String())
}

// floatBits keeps NaN payloads, which a float64 conversion may not.
func (v Value) floatBits() uint64 {
	if v.Kind() == Float32 {
		return uint64(uint32(v.Uint64Bits()))
	}
	return v.Uint64Bits()
}

func (v Value) Uint64Bits() uint64 {
	var x uint64
	for i := len(v.b) - 1; i >= 0; i-- {
		x = x<<8 | uint64(v.b[i])
	}
	return x
}

func TestReencode(t *testing.T) {
	for _, r := range []Record{
		{scalarsEvent(), scalarsPayload()},
		{requestEvent(), requestPayload()},
		{deepEvent(), deepPayload()},
	} {
		if got := appendValues(t, nil, r); !bytes.Equal(got, r.Payload) {
			t.Errorf("%s: re-encoded\n% x\nwant\n% x", r.Event.FullName(), got, r.Payload)
		}
	}
}

func FuzzCursor(f *testing.F) {
	events := fuzzEvents()
	f.Add(uint8(0), scalarsPayload())
	f.Add(uint8(1), requestPayload())
	f.Add(uint8(1), requestPayload()[:20])
	f.Add(uint8(4), deepPayload())
	f.Add(uint8(5), []byte{1, 2, 3, 0, 0, 0, 4, 5, 6, 7})
	f.Fuzz(func(t *testing.T, i uint8, p []byte) {
		r := Record{Event: events[int(i)%len(events)], Payload: p}
		checkCursor(t, r)
	})
}

// fuzzEvents are the events FuzzCursor reads payloads of: the test events,
// as decoded from their encoding, and one with sequences of every size.
func fuzzEvents() []*Event {
	evs := testEvents()
	evs = append(evs, &Event{Provider: "p", Name: "seqs", Fields: []Field{
		{"a", Type{Kind: Sequence, Elem: &Type{Kind: Uint8}}},
		{"b", Type{Kind: Sequence, Elem: &Type{Kind: Float32}}},
		{"c", Type{Kind: Bytes}},
		{"d", Type{Kind: Sequence, Elem: &signT}},
		{"e", Type{Kind: String}},
	}})
	d, err := DecodeCatalog(AppendCatalog(nil, evs))
	if err != nil {
		panic(err)
	}
	return d.Events
}

// checkCursor is the FuzzCursor property: reading never panics; a payload
// that validates is read whole by a Cursor, re-encodes to itself, formats
// as text, and each top-level field is found by name.
func checkCursor(t *testing.T, r Record) {
	var c Cursor
	c.Reset(r)
	n := 0
	for c.Next() {
		n++
		_ = AppendValueText(nil, c.Value())
	}
	text := string(r.AppendText(nil))
	err := ValidatePayload(r.Event, r.Payload)
	if err != nil {
		if !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error does not wrap ErrCorrupt: %v", err)
		}
		switch {
		case c.Err() != nil && !strings.Contains(text, "<error: ") && !r.Event.Opaque:
			t.Fatalf("text of a corrupt payload does not say so: %s", text)
		case c.Err() == nil && !strings.Contains(err.Error(), "bool neither 0 nor 1"):
			// The Cursor reads any non-zero bool byte as true; only
			// ValidatePayload insists on 0 or 1.
			t.Fatalf("ValidatePayload fails (%v), the Cursor does not", err)
		}
		return
	}
	if c.Err() != nil {
		t.Fatalf("payload validates, cursor fails: %v", c.Err())
	}
	if got := appendValues(t, nil, r); !bytes.Equal(got, r.Payload) {
		t.Fatalf("re-encoded\n% x\nwant\n% x", got, r.Payload)
	}
	for _, f := range r.Event.Fields {
		if _, ok := r.Field(f.Name); !ok {
			t.Fatalf("field %s not found", f.Name)
		}
	}
	if strings.Contains(text, "<error") {
		t.Fatalf("text of a valid payload: %s", text)
	}
}
