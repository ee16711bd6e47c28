package tracedir

import (
	"bytes"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/usertrace/usertrace/catalog"
)

// allKinds has a field of every kind, struct nesting, enums with and
// without labels, and arrays the plan leaves to AppendText (of strings).
var allKinds = &catalog.Event{Provider: "kinds", Name: "all", Fields: []catalog.Field{
	{Name: "b", Type: typ(catalog.Bool)},
	{Name: "i8", Type: typ(catalog.Int8)},
	{Name: "i16", Type: typ(catalog.Int16)},
	{Name: "i32", Type: typ(catalog.Int32)},
	{Name: "i64", Type: typ(catalog.Int64)},
	{Name: "u8", Type: typ(catalog.Uint8)},
	{Name: "u16", Type: typ(catalog.Uint16)},
	{Name: "u32", Type: typ(catalog.Uint32)},
	{Name: "u64", Type: typ(catalog.Uint64)},
	{Name: "f32", Type: typ(catalog.Float32)},
	{Name: "f64", Type: typ(catalog.Float64)},
	{Name: "s", Type: typ(catalog.String)},
	{Name: "raw", Type: typ(catalog.Bytes)},
	{Name: "took", Type: typ(catalog.Duration)},
	{Name: "at", Type: typ(catalog.Time)},
	{Name: "color", Type: catalog.Type{Kind: catalog.Enum, Elem: &catalog.Type{Kind: catalog.Uint8},
		Labels: []catalog.EnumLabel{{Value: 0, Label: "red"}, {Value: 1, Label: "green"}, {Value: 200, Label: "blue sky"}}}},
	{Name: "delta", Type: catalog.Type{Kind: catalog.Enum, Elem: &catalog.Type{Kind: catalog.Int16},
		Labels: []catalog.EnumLabel{{Value: -1, Label: "down"}, {Value: 1, Label: "up"}}}},
	{Name: "arr", Type: catalog.Type{Kind: catalog.Array, Len: 3, Elem: &catalog.Type{Kind: catalog.Int16}}},
	{Name: "seq", Type: catalog.Type{Kind: catalog.Sequence, Elem: &catalog.Type{Kind: catalog.Float32}}},
	{Name: "bits", Type: catalog.Type{Kind: catalog.Sequence, Elem: &catalog.Type{Kind: catalog.Bool}}},
	{Name: "cols", Type: catalog.Type{Kind: catalog.Array, Len: 2, Elem: &catalog.Type{Kind: catalog.Enum, Elem: &catalog.Type{Kind: catalog.Int8},
		Labels: []catalog.EnumLabel{{Value: -2, Label: "neg"}}}}},
	{Name: "pt", Type: catalog.Type{Kind: catalog.Struct, Fields: []catalog.Field{
		{Name: "x", Type: typ(catalog.Int32)},
		{Name: "name", Type: typ(catalog.String)},
		{Name: "inner", Type: catalog.Type{Kind: catalog.Struct, Fields: []catalog.Field{
			{Name: "ok", Type: typ(catalog.Bool)},
		}}},
	}}},
	{Name: "tail", Type: typ(catalog.Uint8)},
}}

// tags has a sequence of strings, which Validate (and so DecodeCatalog)
// refuses and AppendText reports as an error: the plan leaves it to
// AppendText.
var tags = &catalog.Event{Provider: "kinds", Name: "tags", Fields: []catalog.Field{
	{Name: "n", Type: typ(catalog.Uint8)},
	{Name: "tags", Type: catalog.Type{Kind: catalog.Sequence, Elem: &catalog.Type{Kind: catalog.String}}},
}}

var planEvents = []*catalog.Event{&threeDesc, allKinds, tags, {Provider: "p", Name: "nofields"}}

// randPayload encodes random values for e's fields, with strings that need
// escaping or are not UTF-8 now and then.
func randPayload(r *rand.Rand, b []byte, fs []catalog.Field) []byte {
	for i := range fs {
		b = randValue(r, b, &fs[i].Type)
	}
	return b
}

var strs = []string{"", "0123456789abcdef", `a"b`, `back\slash`, "tab\there", "héllo", "\xff\xfe", "\x7f", "~ !"}

func randValue(r *rand.Rand, b []byte, t *catalog.Type) []byte {
	switch t.Kind {
	case catalog.String:
		return catalog.AppendString(b, strs[r.IntN(len(strs))])
	case catalog.Bytes:
		return catalog.AppendBytes(b, []byte(strs[r.IntN(len(strs))]))
	case catalog.Array, catalog.Sequence:
		n := int(t.Len)
		if t.Kind == catalog.Sequence {
			n = r.IntN(4)
			b = catalog.AppendUint32(b, uint32(n))
		}
		for range n {
			b = randValue(r, b, t.Elem)
		}
		return b
	case catalog.Struct:
		return randPayload(r, b, t.Fields)
	case catalog.Enum:
		return randValue(r, b, t.Elem)
	case catalog.Float32:
		return catalog.AppendFloat32(b, []float32{0, 1.5, -2.25e-30, float32(math.Inf(1)), float32(math.NaN()), r.Float32()}[r.IntN(6)])
	case catalog.Float64:
		return catalog.AppendFloat64(b, []float64{0, 0.1, -1e300, math.Inf(-1), math.NaN(), r.NormFloat64()}[r.IntN(6)])
	}
	n := t.Kind.Size()
	v := r.Uint64()
	switch r.IntN(4) {
	case 0:
		v = 0
	case 1:
		v = uint64(r.IntN(300)) - 150
	case 2:
		v = uint64(r.Int64N(1e13))
	}
	if t.Kind == catalog.Bool {
		v &= 1
	}
	for i := range n {
		b = append(b, byte(v>>(8*i)))
	}
	return b
}

func checkPlan(t *testing.T, e *catalog.Event, p []byte) {
	t.Helper()
	want := catalog.Record{Event: e, Payload: p}.AppendText([]byte("prefix "))
	got := compilePlan("", e).appendText([]byte("prefix "), e, p)
	if !bytes.Equal(got, want) {
		t.Fatalf("payload %x of %s:\n plan       %s\n AppendText %s", p, e.FullName(), got, want)
	}
}

// TestPlanMatchesAppendText: the compiled plan writes what AppendText
// writes, for valid payloads and for cut and damaged ones.
func TestPlanMatchesAppendText(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, e := range planEvents {
		if err := e.Validate(); err != nil && e != tags {
			t.Fatal(err)
		}
		for range 2000 {
			p := randPayload(r, nil, e.Fields)
			checkPlan(t, e, p)
			checkPlan(t, e, append(p, 0))
			if len(p) > 0 {
				checkPlan(t, e, p[:r.IntN(len(p))])
				q := append([]byte(nil), p...)
				q[r.IntN(len(q))] = byte(r.Uint32())
				checkPlan(t, e, q)
			}
		}
	}
	if compilePlan("", &threeDesc).slow || compilePlan("", allKinds).slow || !compilePlan("", tags).slow {
		t.Error("plans: the bench and all-kinds events should be planned, the tags event not")
	}
}

func FuzzPlan(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for i, e := range planEvents {
		f.Add(uint8(i), randPayload(r, nil, e.Fields))
	}
	f.Fuzz(func(t *testing.T, which uint8, p []byte) {
		checkPlan(t, planEvents[int(which)%len(planEvents)], p)
	})
}

// BenchmarkPlan compares the plan with AppendText on the bench payload.
func BenchmarkPlan(b *testing.B) {
	p := threePayload(nil, 123456789012, 4000000)
	buf := make([]byte, 0, 256)
	b.Run("plan", func(b *testing.B) {
		pl := compilePlan("", &threeDesc)
		for b.Loop() {
			buf = pl.appendText(buf[:0], &threeDesc, p)
		}
	})
	b.Run("AppendText", func(b *testing.B) {
		for b.Loop() {
			buf = catalog.Record{Event: &threeDesc, Payload: p}.AppendText(buf[:0])
		}
	})
}
