package ctf_test

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/ring"
)

func typ(k catalog.Kind) catalog.Type { return catalog.Type{Kind: k} }

// allKinds has a field of every kind.
var allKinds = &catalog.Event{Provider: "kinds", Name: "all", Level: catalog.LevelWarning, Fields: []catalog.Field{
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
	{Name: "seq", Type: catalog.Type{Kind: catalog.Sequence, Elem: &catalog.Type{Kind: catalog.Uint32}}},
	{Name: "pt", Type: catalog.Type{Kind: catalog.Struct, Fields: []catalog.Field{
		{Name: "x", Type: typ(catalog.Int32)},
		{Name: "name", Type: typ(catalog.String)},
		{Name: "tags", Type: catalog.Type{Kind: catalog.Sequence, Elem: &catalog.Type{Kind: catalog.String}}},
		{Name: "inner", Type: catalog.Type{Kind: catalog.Struct, Fields: []catalog.Field{
			{Name: "ok", Type: typ(catalog.Bool)},
			{Name: "grid", Type: catalog.Type{Kind: catalog.Array, Len: 2, Elem: &catalog.Type{Kind: catalog.Array, Len: 2, Elem: &catalog.Type{Kind: catalog.Uint8}}}},
		}}},
	}}},
	{Name: "struct", Type: typ(catalog.Uint8)}, // a TSDL keyword as a field name
}}

// three is the benchmark event: uint64, uint32, 16-byte string.
var three = &catalog.Event{Provider: "bench", Name: "three", Fields: []catalog.Field{
	{Name: "a", Type: typ(catalog.Uint64)},
	{Name: "b", Type: typ(catalog.Uint32)},
	{Name: "s", Type: typ(catalog.String)},
}}

type allValues struct {
	b     bool
	i8    int8
	i16   int16
	i32   int32
	i64   int64
	u8    uint8
	u16   uint16
	u32   uint32
	u64   uint64
	f32   float32
	f64   float64
	s     string
	raw   []byte
	took  time.Duration
	at    time.Time
	color uint8
	delta int16
	arr   [3]int16
	seq   []uint32
	x     int32
	name  string
	tags  []string
	ok    bool
	grid  [2][2]uint8
	kw    uint8
}

func (v *allValues) encode() []byte {
	var b []byte
	b = catalog.AppendBool(b, v.b)
	b = catalog.AppendInt8(b, v.i8)
	b = catalog.AppendInt16(b, v.i16)
	b = catalog.AppendInt32(b, v.i32)
	b = catalog.AppendInt64(b, v.i64)
	b = catalog.AppendUint8(b, v.u8)
	b = catalog.AppendUint16(b, v.u16)
	b = catalog.AppendUint32(b, v.u32)
	b = catalog.AppendUint64(b, v.u64)
	b = catalog.AppendFloat32(b, v.f32)
	b = catalog.AppendFloat64(b, v.f64)
	b = catalog.AppendString(b, v.s)
	b = catalog.AppendBytes(b, v.raw)
	b = catalog.AppendDuration(b, v.took)
	b = catalog.AppendTime(b, v.at)
	b = catalog.AppendUint8(b, v.color)
	b = catalog.AppendInt16(b, v.delta)
	for _, a := range v.arr {
		b = catalog.AppendInt16(b, a)
	}
	b = catalog.AppendUint32(b, uint32(len(v.seq)))
	for _, s := range v.seq {
		b = catalog.AppendUint32(b, s)
	}
	b = catalog.AppendInt32(b, v.x)
	b = catalog.AppendString(b, v.name)
	b = catalog.AppendUint32(b, uint32(len(v.tags)))
	for _, s := range v.tags {
		b = catalog.AppendString(b, s)
	}
	b = catalog.AppendBool(b, v.ok)
	b = append(b, v.grid[0][0], v.grid[0][1], v.grid[1][0], v.grid[1][1])
	b = catalog.AppendUint8(b, v.kw)
	return b
}

// TestBabeltrace writes a trace of drained ring sub-buffers and checks that
// babeltrace2 decodes every field value exactly.
func TestBabeltrace(t *testing.T) {
	bt, err := exec.LookPath("babeltrace2")
	if err != nil {
		t.Skip("babeltrace2 not installed (apt-get install babeltrace2): cannot check the trace with the reference reader")
	}
	vals := []allValues{{
		b: true, i8: math.MinInt8, i16: math.MinInt16, i32: math.MinInt32, i64: math.MinInt64,
		u8: math.MaxUint8, u16: math.MaxUint16, u32: math.MaxUint32, u64: math.MaxUint64,
		f32: 1.5, f64: -2.25e-300, s: "héllo \"world\"", raw: []byte{0, 1, 255},
		took: -1500 * time.Millisecond, at: time.Unix(1700000000, 123456789),
		color: 200, delta: -1, arr: [3]int16{-1, 0, 32767}, seq: []uint32{7, 8, 9, 4000000000},
		x: -42, name: "pt", tags: []string{"a", "", "ccc"}, ok: true, grid: [2][2]uint8{{1, 2}, {3, 4}}, kw: 9,
	}, {
		i64: math.MaxInt64, i32: math.MaxInt32, i16: math.MaxInt16, i8: math.MaxInt8,
		f32: float32(math.Inf(-1)), f64: 0.1, color: 5, delta: 1, at: time.Unix(0, 0),
	}}
	// Ids: the "all" event is 35 (extended headers), "three" is 0 (compact).
	events := make([]*catalog.Event, 36)
	events[0], events[35] = three, allKinds
	w, err := ring.Create(ring.Config{NumShards: 2, NumSub: 4, SubSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, v := range vals {
		if !w.Write(i%2, 35, v.encode()) {
			t.Fatal("write failed")
		}
	}
	const nThree = 300 // spans several packets of shard 0
	var p []byte
	for i := range nThree {
		p = catalog.AppendUint64(p[:0], uint64(i)*1e15)
		p = catalog.AppendUint32(p, uint32(i))
		p = catalog.AppendString(p, "0123456789abcdef")
		if len(p) != 29 {
			t.Fatalf("payload %d bytes", len(p))
		}
		if !w.Write(0, 0, p) {
			t.Fatal("write failed")
		}
		if i == 100 {
			// > 2^27 ticks (52 ms at 2.6 GHz, 134 ms for ns): forces
			// an extended header.
			time.Sleep(200 * time.Millisecond)
		}
	}
	w.Flush()

	clk := w.Info().Clock()
	meta, err := ctf.Metadata(ctf.Trace{UUID: w.UUID(), Clock: clk, Events: events, Env: map[string]string{"test": "babeltrace"}})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "trace")
	d, err := ctf.CreateDir(dir, meta)
	if err != nil {
		t.Fatal(err)
	}
	r := openReader(t, w)
	var buf []byte
	var want []uint64 // event timestamps in file order: shard 0 then 1
	per := map[int][]uint64{}
	for {
		sh, pkt, err := r.Next(buf)
		if err == ring.ErrEmpty {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		buf = pkt
		if err := ctf.Events(pkt, events, func(e ctf.Event) bool { per[sh] = append(per[sh], e.Timestamp); return true }); err != nil {
			t.Fatal(err)
		}
		if err := d.WritePacket(sh, pkt); err != nil {
			t.Fatal(err)
		}
	}
	d.Close()
	want = append(per[0], per[1]...)

	out, err := exec.Command(bt, "--clock-cycles", "--no-delta", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("babeltrace2: %v\n%s\nmetadata:\n%s", err, out, meta)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(vals)+nThree {
		t.Fatalf("babeltrace2 printed %d lines, want %d:\n%s", len(lines), len(vals)+nThree, out)
	}
	t.Logf("first lines:\n%s\n%s\n%s", lines[0], lines[1], lines[2])
	wantAll := []string{
		`kinds:all: { cpu_id = 0 }, { b = ( "true" : container = 1 ), i8 = -128, i16 = -32768, i32 = -2147483648, i64 = -9223372036854775808, u8 = 255, u16 = 65535, u32 = 4294967295, u64 = 18446744073709551615, f32 = 1.5, f64 = -2.25e-300, s = "héllo \"world\"", _raw_length = 3, raw = [ [0] = 0, [1] = 1, [2] = 255 ], took = -1500000000, at = 1700000000123456789, color = ( "blue sky" : container = 200 ), delta = ( "down" : container = -1 ), arr = [ [0] = -1, [1] = 0, [2] = 32767 ], _seq_length = 4, seq = [ [0] = 7, [1] = 8, [2] = 9, [3] = 4000000000 ], pt = { x = -42, name = "pt", _tags_length = 3, tags = [ [0] = "a", [1] = "", [2] = "ccc" ], inner = { ok = ( "true" : container = 1 ), grid = [ [0] = [ [0] = 1, [1] = 2 ], [1] = [ [0] = 3, [1] = 4 ] ] } }, struct = 9 }`,
		`kinds:all: { cpu_id = 1 }, { b = ( "false" : container = 0 ), i8 = 127, i16 = 32767, i32 = 2147483647, i64 = 9223372036854775807, u8 = 0, u16 = 0, u32 = 0, u64 = 0, f32 = -inf, f64 = 0.1, s = "", _raw_length = 0, raw = [ ], took = 0, at = 0, color = ( <unknown> : container = 5 ), delta = ( "up" : container = 1 ), arr = [ [0] = 0, [1] = 0, [2] = 0 ], _seq_length = 0, seq = [ ], pt = { x = 0, name = "", _tags_length = 0, tags = [ ], inner = { ok = ( "false" : container = 0 ), grid = [ [0] = [ [0] = 0, [1] = 0 ], [1] = [ [0] = 0, [1] = 0 ] ] } }, struct = 0 }`,
	}
	var gotAll []string
	var got []uint64 // babeltrace2's timestamps, in its (time) order
	nt := 0
	for i, l := range lines {
		// "[cycles] host? name: ..." — the timestamp is the first field.
		end := strings.IndexByte(l, ']')
		if !strings.HasPrefix(l, "[") || end < 0 {
			t.Fatalf("line %d: %q", i, l)
		}
		cycles, err := strconv.ParseUint(l[1:end], 10, 64)
		if err != nil {
			t.Fatalf("line %d: %q", i, l)
		}
		got = append(got, cycles)
		if k := strings.Index(l, "kinds:all:"); k >= 0 {
			gotAll = append(gotAll, l[k:])
			continue
		}
		k := strings.Index(l, "bench:three:")
		if k < 0 {
			t.Fatalf("line %d: %q", i, l)
		}
		want := "bench:three: { cpu_id = 0 }, { a = " + uitoa(uint64(nt)*1e15) + ", b = " + uitoa(uint64(nt)) + `, s = "0123456789abcdef" }`
		if l[k:] != want {
			t.Fatalf("line %d:\n got %s\nwant %s", i, l[k:], want)
		}
		nt++
	}
	for i := range wantAll {
		if i >= len(gotAll) || gotAll[i] != wantAll[i] {
			g := ""
			if i < len(gotAll) {
				g = gotAll[i]
			}
			t.Errorf("kinds:all #%d:\n got %s\nwant %s", i, g, wantAll[i])
		}
	}
	// Timestamps: babeltrace2's clock values are the ones we rebuilt,
	// including across the 200 ms gap (an extended header).
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("babeltrace2 timestamps differ from the written ones")
	}
	if d := clk.Wall(want[len(want)-1]) - clk.Wall(want[0]); d < int64(200*time.Millisecond) {
		t.Errorf("trace spans %d ns, less than the 200 ms sleep", d)
	}

	// Wall-clock times: babeltrace2's conversion of each timestamp
	// through the metadata's clock block is ctf.Clock.Wall's, to the ns.
	out, err = exec.Command(bt, "--clock-seconds", "--no-delta", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("babeltrace2: %v\n%s", err, out)
	}
	lines = strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != len(got) {
		t.Fatalf("babeltrace2 --clock-seconds printed %d lines, want %d", len(lines), len(got))
	}
	for i, l := range lines {
		end := strings.IndexByte(l, ']')
		sec, frac, ok := strings.Cut(l[1:max(end, 1)], ".")
		s, err1 := strconv.ParseInt(sec, 10, 64)
		ns, err2 := strconv.ParseInt(frac, 10, 64)
		if !strings.HasPrefix(l, "[") || !ok || len(frac) != 9 || err1 != nil || err2 != nil {
			t.Fatalf("line %d: %q", i, l)
		}
		if bw, w := s*1e9+ns, clk.Wall(got[i]); bw != w {
			t.Fatalf("line %d: babeltrace2 says %d ns, ctf.Clock.Wall(%d) = %d (clock %+v)", i, bw, got[i], w, clk)
		}
	}
	if now := time.Now().UnixNano(); clk.Wall(got[0]) > now || clk.Wall(got[len(got)-1]) < now-int64(10*time.Second) {
		t.Errorf("events at %d..%d ns, now is %d", clk.Wall(got[0]), clk.Wall(got[len(got)-1]), now)
	}
	t.Logf("clock %+v", clk)
	st, _ := os.Stat(filepath.Join(dir, "stream_0"))
	t.Logf("stream_0: %d bytes for %d bench:three events", st.Size(), nThree)
}

func uitoa(v uint64) string {
	if v == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	for v > 0 {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[i:])
}
