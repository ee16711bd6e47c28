package usertrace_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/usertrace/usertrace"
	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/enable"
)

type threeFields struct {
	A uint64
	B uint32
	S string
}

type method uint8

func (method) TraceEnum() []usertrace.EnumLabel {
	return []usertrace.EnumLabel{{Value: 0, Label: "GET"}, {Value: 1, Label: "POST"}}
}

type inner struct {
	X int16
	Y float32
}

type everyKind struct {
	Flag    bool
	I8      int8
	I16     int16
	I32     int32
	I64     int64
	Int     int
	U8      uint8
	U16     uint16
	U32     uint32
	U64     uint64
	F32     float32
	F64     float64
	Str     string
	Raw     []byte
	Took    time.Duration
	At      time.Time
	Method  method
	Fixed   [3]uint16
	Var     []int32
	Inner   inner
	Renamed uint8 `trace:"other_name"`
	Skipped uint8 `trace:"-"`
	hidden  uint8
}

func TestFieldsFromStruct(t *testing.T) {
	ev := usertrace.NewEvent[everyKind]("test", "every_kind", usertrace.WithLevel(usertrace.LevelDebug), usertrace.WithAttr("owner", "tests"))
	d := ev.Desc()
	var names []string
	for _, f := range d.Fields {
		names = append(names, f.Name+":"+f.Type.Kind.String())
	}
	want := "flag:bool i8:int8 i16:int16 i32:int32 i64:int64 int:int64 u8:uint8 u16:uint16 u32:uint32 u64:uint64 " +
		"f32:float32 f64:float64 str:string raw:bytes took:duration at:time method:enum fixed:array var:sequence inner:struct other_name:uint8"
	if got := strings.Join(names, " "); got != want {
		t.Fatalf("fields:\n got %s\nwant %s", got, want)
	}
	if d.Level != usertrace.LevelDebug || len(d.Attrs) != 1 || d.Attrs[0] != (catalog.Attr{Key: "owner", Value: "tests"}) {
		t.Fatalf("level/attrs: %v %v", d.Level, d.Attrs)
	}
	if !strings.HasSuffix(d.File, "event_test.go") || d.Line == 0 {
		t.Fatalf("source location %s:%d, want this file", d.File, d.Line)
	}
	m := d.Fields[16].Type
	if m.Elem.Kind != catalog.Uint8 || len(m.Labels) != 2 || m.Labels[1].Label != "POST" {
		t.Fatalf("enum type %+v", m)
	}
	if f := d.Fields[17].Type; f.Len != 3 || f.Elem.Kind != catalog.Uint16 {
		t.Fatalf("array type %+v", f)
	}
	if in := d.Fields[19].Type; len(in.Fields) != 2 || in.Fields[1].Name != "y" {
		t.Fatalf("struct type %+v", in)
	}
	if err := d.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSnakeCase(t *testing.T) {
	type names struct {
		HTTPStatus uint8
		UserID     uint8
		Plain      uint8
		A2B        uint8
	}
	ev := usertrace.NewEvent[names]("test", "snake")
	var got []string
	for _, f := range ev.Desc().Fields {
		got = append(got, f.Name)
	}
	if strings.Join(got, ",") != "http_status,user_id,plain,a2_b" {
		t.Fatalf("got %v", got)
	}
}

func TestDefinitionErrors(t *testing.T) {
	type withMap struct{ M map[string]int }
	type withPtr struct{ P *int }
	type withStrSlice struct{ S []string }
	type badTag struct {
		X uint8 `trace:"not-an-identifier"`
	}
	type empty struct{}
	cases := []struct {
		name string
		def  func() error
		want string
	}{
		{"map", func() error { _, err := usertrace.DefineEvent[withMap]("test", "map"); return err }, "map[string]int is not supported"},
		{"pointer", func() error { _, err := usertrace.DefineEvent[withPtr]("test", "ptr"); return err }, "*int is not supported"},
		{"slice of strings", func() error { _, err := usertrace.DefineEvent[withStrSlice]("test", "ss"); return err }, "slices hold scalars only"},
		{"not a struct", func() error { _, err := usertrace.DefineEvent[int]("test", "int"); return err }, "must be a struct"},
		{"bad tag", func() error { _, err := usertrace.DefineEvent[badTag]("test", "tag"); return err }, `"not-an-identifier" is not an identifier`},
		{"bad provider", func() error { _, err := usertrace.DefineEvent[empty]("my-app", "x"); return err }, `provider "my-app" is not an identifier`},
		{"bad name", func() error { _, err := usertrace.DefineEvent[empty]("app", "2x"); return err }, `event name "2x" is not an identifier`},
		{"bad level", func() error {
			_, err := usertrace.DefineEvent[empty]("app", "lvl", usertrace.WithLevel(9))
			return err
		}, "level 9 out of range"},
		{"redefined", func() error {
			usertrace.NewEvent[empty]("test", "redefined")
			_, err := usertrace.DefineEvent[threeFields]("test", "redefined")
			return err
		}, "already defined at"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.def()
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
	t.Run("NewEvent panics", func(t *testing.T) {
		defer func() {
			if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "not supported") {
				t.Fatalf("recovered %v", r)
			}
		}()
		usertrace.NewEvent[withMap]("test", "panics")
	})
}

func TestSameDefinitionTwice(t *testing.T) {
	a := usertrace.NewEvent[threeFields]("test", "twice")
	b := usertrace.NewEvent[threeFields]("test", "twice")
	if a.Desc().ID != b.Desc().ID {
		t.Fatalf("ids %d and %d: one event defined twice must be one event", a.Desc().ID, b.Desc().ID)
	}
	var n int
	at, _ := a.Attach(usertrace.TracerFunc(func(usertrace.Record) { n++ }))
	defer at.Detach()
	b.Emit(threeFields{})
	if n != 1 {
		t.Fatalf("tracer on a saw %d events fired through b", n)
	}
}

func TestEmitEncodesPayload(t *testing.T) {
	ev := usertrace.NewEvent[threeFields]("test", "payload")
	var got []byte
	at, err := ev.Attach(usertrace.TracerFunc(func(r usertrace.Record) {
		if r.Event.FullName() != "test:payload" {
			t.Errorf("record of %s", r.Event.FullName())
		}
		got = append(got[:0], r.Payload...)
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer at.Detach()
	ev.Emit(threeFields{A: 0x0102030405060708, B: 0xAABBCCDD, S: "sixteen bytes!!!"})
	want := binary.LittleEndian.AppendUint64(nil, 0x0102030405060708)
	want = binary.LittleEndian.AppendUint32(want, 0xAABBCCDD)
	want = append(want, "sixteen bytes!!!\x00"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("payload\n got %x\nwant %x", got, want)
	}
	// A string is cut at its first NUL: the payload layout has no other way
	// to mark its end.
	ev.Emit(threeFields{S: "a\x00b"})
	if tail := got[12:]; string(tail) != "a\x00" {
		t.Fatalf("string with NUL encoded as %q", tail)
	}
}

func TestEveryKindPayload(t *testing.T) {
	ev := usertrace.NewEvent[everyKind]("test", "every_kind_payload")
	var got []byte
	at, _ := ev.Attach(usertrace.TracerFunc(func(r usertrace.Record) { got = append(got[:0], r.Payload...) }))
	defer at.Detach()
	at0 := time.Unix(1700000000, 123)
	ev.Emit(everyKind{
		Flag: true, I8: -1, I16: -2, I32: -3, I64: -4, Int: -5, U8: 6, U16: 7, U32: 8, U64: 9,
		F32: 1.5, F64: -2.25, Str: "s", Raw: []byte{1, 2}, Took: 3 * time.Millisecond, At: at0,
		Method: 1, Fixed: [3]uint16{1, 2, 3}, Var: []int32{-1, 1}, Inner: inner{X: 10, Y: 0.5},
		Renamed: 11, Skipped: 12, hidden: 13,
	})
	le := binary.LittleEndian
	var w []byte
	w = append(w, 1, 0xff)
	w = le.AppendUint16(w, 0xfffe)
	w = le.AppendUint32(w, 0xfffffffd)
	w = le.AppendUint64(w, ^uint64(3))
	w = le.AppendUint64(w, ^uint64(4))
	w = append(w, 6)
	w = le.AppendUint16(w, 7)
	w = le.AppendUint32(w, 8)
	w = le.AppendUint64(w, 9)
	w = le.AppendUint32(w, 0x3fc00000)         // 1.5
	w = le.AppendUint64(w, 0xc002000000000000) // -2.25
	w = append(w, 's', 0)
	w = le.AppendUint32(w, 2)
	w = append(w, 1, 2)
	w = le.AppendUint64(w, uint64(3*time.Millisecond))
	w = le.AppendUint64(w, uint64(at0.UnixNano()))
	w = append(w, 1)
	w = le.AppendUint16(w, 1)
	w = le.AppendUint16(w, 2)
	w = le.AppendUint16(w, 3)
	w = le.AppendUint32(w, 2)
	w = le.AppendUint32(w, 0xffffffff)
	w = le.AppendUint32(w, 1)
	w = le.AppendUint16(w, 10)
	w = le.AppendUint32(w, 0x3f000000) // 0.5
	w = append(w, 11)
	if !bytes.Equal(got, w) {
		t.Fatalf("payload\n got %x\nwant %x", got, w)
	}
}

func TestLargePayload(t *testing.T) {
	type blob struct{ Data []byte }
	ev := usertrace.NewEvent[blob]("test", "blob")
	var sizes []int
	at, _ := ev.Attach(usertrace.TracerFunc(func(r usertrace.Record) { sizes = append(sizes, len(r.Payload)) }))
	defer at.Detach()
	ev.Emit(blob{Data: make([]byte, 1000)})                 // pooled buffer
	ev.Emit(blob{Data: make([]byte, usertrace.MaxPayload)}) // too large
	if len(sizes) != 1 || sizes[0] != 1004 {
		t.Fatalf("delivered sizes %v, want [1004]", sizes)
	}
	if ev.Oversized() != 1 {
		t.Fatalf("oversized count %d, want 1", ev.Oversized())
	}
}

func TestDisabledDoesNotEvaluateArguments(t *testing.T) {
	ev := usertrace.NewEvent[threeFields]("test", "lazy")
	calls := 0
	expensive := func() string { calls++; return "x" }
	if ev.Enabled() {
		ev.Emit(threeFields{S: expensive()})
	}
	if calls != 0 {
		t.Fatal("arguments evaluated while disabled")
	}
	at, _ := ev.Attach(usertrace.TracerFunc(func(usertrace.Record) {}))
	if ev.Enabled() {
		ev.Emit(threeFields{S: expensive()})
	}
	at.Detach()
	if calls != 1 {
		t.Fatalf("arguments evaluated %d times while enabled, want 1", calls)
	}
}

func TestEnableWordFollowsAttachments(t *testing.T) {
	ev := usertrace.NewEvent[threeFields]("test", "word")
	w, ok := enable.Lookup(enable.ID(ev.Desc().ID))
	if !ok {
		t.Fatal("no enable word for the event's id")
	}
	if w.Load() != 0 || ev.Enabled() {
		t.Fatal("fresh event enabled")
	}
	a1, _ := ev.Attach(usertrace.TracerFunc(func(usertrace.Record) {}))
	a2, _ := ev.Attach(usertrace.TracerFunc(func(usertrace.Record) {}))
	if st := w.State(); st.Attachments != 2 || st.Kernel || st.Agents != 0 {
		t.Fatalf("state %+v, want 2 attachments", st)
	}
	a1.Detach()
	a1.Detach() // twice is harmless
	a2.Detach()
	if w.Load() != 0 || ev.Enabled() {
		t.Fatalf("word %#x after detaching all", w.Load())
	}
}

func TestZeroAllocs(t *testing.T) {
	ev := usertrace.NewEvent[threeFields]("test", "allocs")
	v := threeFields{A: 1, B: 2, S: "sixteen bytes!!!"}
	if n := testing.AllocsPerRun(1000, func() { ev.Emit(v) }); n != 0 {
		t.Errorf("disabled Emit allocates %v times", n)
	}
	at, _ := ev.Attach(usertrace.TracerFunc(func(usertrace.Record) {}))
	defer at.Detach()
	if n := testing.AllocsPerRun(1000, func() { ev.Emit(v) }); n != 0 {
		t.Errorf("enabled Emit with a callback allocates %v times", n)
	}
	ek := usertrace.NewEvent[everyKind]("test", "allocs_every_kind")
	at2, _ := ek.Attach(usertrace.TracerFunc(func(usertrace.Record) {}))
	defer at2.Detach()
	full := everyKind{Str: "abc", Raw: []byte{1}, Var: []int32{1, 2}, At: time.Now()}
	if n := testing.AllocsPerRun(1000, func() { ek.Emit(full) }); n != 0 {
		t.Errorf("enabled Emit of every kind allocates %v times", n)
	}
}

// TestInlined proves that call sites inline the disabled path: the
// compiler's own report (-gcflags=-m) on internal/inlinecheck, whose every
// Emit and Enabled call must be inlined down to the atomic load.
func TestInlined(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a package")
	}
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	const pkg = "./internal/inlinecheck"
	out, err := exec.Command(gobin, "build", "-gcflags="+pkg+"=-m", "-o", os.DevNull, pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	src, err := os.ReadFile(filepath.Join(pkg, "callsites.go"))
	if err != nil {
		t.Fatal(err)
	}
	sites := 0
	for i, line := range strings.Split(string(src), "\n") {
		for _, call := range []string{"Emit", "Enabled"} {
			if !strings.Contains(line, "."+call+"(") {
				continue
			}
			sites++
			want := regexp.MustCompile(fmt.Sprintf(`callsites.go:%d:\d+: inlining call to usertrace.Event\[.*\]\.%s\n`, i+1, call))
			if !want.Match(out) {
				t.Errorf("line %d: %s is not inlined; compiler said:\n%s", i+1, call, out)
			}
			load := regexp.MustCompile(fmt.Sprintf(`callsites.go:%d:\d+: inlining call to atomic.\(\*Uint32\).Load`, i+1))
			if !load.Match(out) {
				t.Errorf("line %d: the enable word's load is not inlined", i+1)
			}
		}
	}
	if sites < 4 {
		t.Fatalf("found %d call sites in %s; the check is not looking at the right file", sites, pkg)
	}
}
