package userevents

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/usertrace/usertrace"
	"github.com/usertrace/usertrace/catalog"
)

type Method uint8

func (Method) TraceEnum() []usertrace.EnumLabel {
	return []usertrace.EnumLabel{{Value: 0, Label: "GET"}, {Value: 1, Label: "POST"}}
}

type Inner struct {
	Host string
	Port uint32
}

// Every is every field kind that has a user_events type.
type Every struct {
	B   bool
	I8  int8
	I16 int16
	I32 int32
	I64 int64
	U8  uint8
	U16 uint16
	U32 uint32
	U64 uint64
	F32 float32
	F64 float64
	S   string
	Raw []byte
	D   time.Duration
	At  time.Time
	M   Method
	Arr [3]uint16
	Seq []int32
	In  Inner
}

const everyFormat = "uevtest_every u8 b; s8 i8; s16 i16; s32 i32; s64 i64; u8 u8; u16 u16; u32 u32; u64 u64; " +
	"u32 f32; u64 f64; __rel_loc char[] s; __rel_loc u8[] raw; s64 d; s64 at; u8 m; " +
	"__rel_loc u16[] arr; __rel_loc s32[] seq; __rel_loc char[] in_host; u32 in_port"

var every = usertrace.NewEvent[Every]("uevtest", "every")

func everyValue() Every {
	return Every{
		B: true, I8: 65, I16: -2, I32: -3, I64: -4, U8: 66, U16: 500, U32: 7, U64: 1 << 40,
		F32: 1.5, F64: -2, S: "hello", Raw: []byte{0xde, 0xad}, D: 1500, At: time.Unix(0, 1e18),
		M: 1, Arr: [3]uint16{1, 2, 3}, Seq: []int32{-1}, In: Inner{Host: "h", Port: 80},
	}
}

// record captures the payload the library encodes for v.
func record(t testing.TB, v Every) catalog.Record {
	var rec catalog.Record
	a, err := every.Attach(usertrace.TracerFunc(func(r catalog.Record) { rec = r.Clone() }))
	if err != nil {
		t.Fatal(err)
	}
	every.Emit(v)
	a.Detach()
	return rec
}

func TestFormat(t *testing.T) {
	l, err := makeLayout(DefaultName(every.Desc()), every.Desc())
	if err != nil {
		t.Fatal(err)
	}
	if l.desc != everyFormat {
		t.Errorf("format:\n got %s\nwant %s", l.desc, everyFormat)
	}
	// 1+1+2+4+8+1+2+4+8 + 4+8 + 4+4 + 8+8+1 + 4+4 + 4+4
	if want := 84; l.fixed != want || !l.dyn {
		t.Errorf("fixed part %d bytes (dyn %v), want %d (true)", l.fixed, l.dyn, want)
	}
	for _, bad := range []string{"", "has space", "9lives", "a:b"} {
		if _, err := makeLayout(bad, every.Desc()); err == nil {
			t.Errorf("name %q accepted", bad)
		}
	}
	if got := DefaultName(&catalog.Event{Provider: "my-app", Name: "req.done"}); got != "my_app_req_done" {
		t.Errorf("DefaultName = %q", got)
	}
}

func TestRewrite(t *testing.T) {
	rec := record(t, everyValue())
	l, _ := makeLayout("x", every.Desc())
	var buf [stackData]byte
	n, ok := rewrite(buf[:], l, rec.Payload)
	if !ok {
		t.Fatal("rewrite failed")
	}
	out := buf[:n]
	// The fixed part: scalars at their offsets, locations pointing past it.
	le := binary.LittleEndian
	fixed := out[:l.fixed]
	if fixed[0] != 1 || int8(fixed[1]) != 65 || int16(le.Uint16(fixed[2:])) != -2 || le.Uint64(fixed[23:]) != 1<<40 {
		t.Errorf("scalars: % x", fixed[:31])
	}
	// Each location: size<<16 | offset from the byte after it.
	locs := []struct {
		at   int
		data []byte
	}{
		{43, []byte("hello\x00")},
		{47, []byte{0xde, 0xad}},
		{68, []byte{1, 0, 2, 0, 3, 0}},
		{72, []byte{0xff, 0xff, 0xff, 0xff}},
		{76, []byte("h\x00")},
	}
	for _, lc := range locs {
		loc := le.Uint32(fixed[lc.at:])
		off, size := int(loc&0xffff), int(loc>>16)
		start := lc.at + 4 + off
		if size != len(lc.data) || start+size > len(out) || !bytes.Equal(out[start:start+size], lc.data) {
			t.Errorf("location at %d = %#x: data % x, want % x", lc.at, loc, out[min(start, len(out)):min(start+size, len(out))], lc.data)
		}
	}
	if le.Uint32(fixed[80:]) != 80 {
		t.Errorf("in_port: % x", fixed[80:])
	}
	if want := l.fixed + 6 + 2 + 6 + 4 + 2; n != want {
		t.Errorf("rewritten size %d, want %d", n, want)
	}
	if a := testing.AllocsPerRun(100, func() { rewrite(buf[:], l, rec.Payload) }); a != 0 {
		t.Errorf("rewrite allocates %v times", a)
	}
	// Too small a buffer, or a corrupt payload: refused, no panic.
	if _, ok := rewrite(buf[:l.fixed+3], l, rec.Payload); ok {
		t.Error("rewrite into a short buffer succeeded")
	}
	bad := rec
	bad.Payload = bad.Payload[:len(bad.Payload)-1]
	if _, ok := rewrite(buf[:], l, bad.Payload); ok {
		t.Error("rewrite of a truncated payload succeeded")
	}
}

func TestUnsupportedKind(t *testing.T) {
	e := &catalog.Event{Provider: "p", Name: "n", Fields: []catalog.Field{
		{Name: "a", Type: catalog.Type{Kind: catalog.Sequence, Elem: &catalog.Type{Kind: catalog.String}}},
	}}
	if _, err := makeLayout("p_n", e); err == nil || !strings.Contains(err.Error(), `field "a"`) {
		t.Errorf("got %v, want an error naming the field", err)
	}
}

// TestNotSupported runs where the kernel has no user_events (this machine,
// CI): New must say so clearly.
func TestNotSupported(t *testing.T) {
	tr, err := New(Config{})
	if err == nil {
		tr.Close()
		t.Skip("skipping: this kernel has user_events (the VM tests cover it)")
	}
	if inVM {
		t.Fatalf("user_events missing in the VM built for it: %v", err)
	}
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("got %v, want ErrNotSupported", err)
	}
	for _, s := range []string{"CONFIG_USER_EVENTS", "6.4"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not mention %s", err, s)
		}
	}
	t.Logf("as expected here: %v", err)
}

// BenchmarkRewrite measures laying out the every-kind event (five __rel_loc
// fields) for user_events: the user-space part of a user_events write.
func BenchmarkRewrite(b *testing.B) {
	rec := record(b, everyValue())
	l, _ := makeLayout("x", every.Desc())
	var buf [stackData]byte
	b.ReportAllocs()
	for b.Loop() {
		rewrite(buf[:], l, rec.Payload)
	}
}

// FuzzRewrite: any payload is laid out or refused, never a panic, and a
// payload that passes catalog.ValidatePayload is always laid out.
func FuzzRewrite(f *testing.F) {
	rec := record(f, everyValue())
	f.Add(rec.Payload)
	f.Add(record(f, Every{}).Payload)
	f.Add([]byte{})
	l, _ := makeLayout("x", every.Desc())
	f.Fuzz(func(t *testing.T, p []byte) {
		buf := make([]byte, l.fixed+len(p))
		_, ok := rewrite(buf, l, p)
		// Over 64 KiB a location may not fit its 16 bits: refusing is right.
		if !ok && len(p) < 0xffff-l.fixed && catalog.ValidatePayload(every.Desc(), p) == nil {
			t.Errorf("valid payload refused: % x", p)
		}
	})
}
