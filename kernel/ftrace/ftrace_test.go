package ftrace_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usertrace/usertrace"
	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/kernel/ftrace"
)

// Method is an enum field.
type Method uint8

func (Method) TraceEnum() []usertrace.EnumLabel {
	return []usertrace.EnumLabel{{Value: 0, Label: "GET"}, {Value: 1, Label: "POST"}}
}

type Request struct {
	Method Method
	Path   string
	Status uint16
	Took   time.Duration
	OK     bool
	Sizes  []uint32
}

var request = usertrace.NewEvent[Request]("ftracetest", "request")

// Bench is the anchors' payload: a uint64, a uint32 and a 16-byte string.
type Bench struct {
	A uint64
	B uint32
	S string
}

var benchEvent = usertrace.NewEvent[Bench]("ftracetest", "bench")

// mountTracefs mounts tracefs or skips the test saying why.
func mountTracefs(tb testing.TB) string {
	tb.Helper()
	root, err := ftrace.Mount()
	if err != nil {
		tb.Skipf("skipping: tracefs cannot be mounted here: %v", err)
	}
	return root
}

// newTracer makes a tracer on a fresh instance that it removes at the end.
func newTracer(tb testing.TB, mode ftrace.Mode) *ftrace.Tracer {
	tb.Helper()
	mountTracefs(tb)
	name := fmt.Sprintf("usertrace-%s-%d-%d", strings.ToLower(tb.Name()), os.Getpid(), time.Now().UnixNano())
	name = strings.NewReplacer("/", "-").Replace(name)
	tr, err := ftrace.New(ftrace.Config{Mode: mode, Instance: name, CreateInstance: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := tr.Close(); err != nil {
			tb.Error(err)
		}
		if _, err := os.Stat(tr.Dir()); !os.IsNotExist(err) {
			tb.Errorf("instance %s still there after Close: %v", tr.Dir(), err)
		}
	})
	// A new instance traces from the start, but say so: the test must not
	// depend on a default.
	if err := os.WriteFile(filepath.Join(tr.Dir(), "tracing_on"), []byte("1"), 0); err != nil {
		tb.Fatal(err)
	}
	return tr
}

// traceLines reads the instance's trace file and returns, for each entry,
// what follows marker in it.
func traceLines(t *testing.T, tr *ftrace.Tracer, marker string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tr.Dir(), "trace"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		if i := strings.Index(l, marker); i >= 0 {
			out = append(out, l[i+len(marker):])
		}
	}
	return out
}

func TestText(t *testing.T) {
	tr := newTracer(t, ftrace.Text)
	a, err := tr.Attach(request.Point())
	if err != nil {
		t.Fatal(err)
	}
	request.Emit(Request{Method: 1, Path: "/login", Status: 200, Took: 1500 * time.Microsecond, OK: true, Sizes: []uint32{1, 2}})
	request.Emit(Request{Path: "quote\"d\n", Status: 404})
	a.Detach()
	request.Emit(Request{Path: "/not-traced"}) // detached: not written
	want := []string{
		`ftracetest:request: method=POST(1), path="/login", status=200, took=1.5ms, ok=true, sizes=[1, 2]`,
		`ftracetest:request: method=GET(0), path="quote\"d\n", status=404, took=0s, ok=false, sizes=[]`,
	}
	got := traceLines(t, tr, ": tracing_mark_write: ")
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("trace file:\n got %q\nwant %q", got, want)
	}
	if n, err := tr.Errors(); n != 0 {
		t.Errorf("%d write errors: %v", n, err)
	}
}

func TestRaw(t *testing.T) {
	tr := newTracer(t, ftrace.Raw)
	if _, err := tr.Attach(benchEvent.Point()); err != nil {
		t.Fatal(err)
	}
	payloads := [][]byte{}
	rec := usertrace.TracerFunc(func(r catalog.Record) { payloads = append(payloads, r.Clone().Payload) })
	a, err := benchEvent.Attach(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Detach()
	benchEvent.Emit(Bench{A: 0x1122334455667788, B: 7, S: "0123456789abcdef"})
	benchEvent.Emit(Bench{A: 1, B: 2, S: ""})
	id := benchEvent.Desc().ID
	got := traceLines(t, tr, fmt.Sprintf("# %x buf:", id))
	if len(got) != len(payloads) {
		t.Fatalf("got %d raw entries with id %#x, want %d:\n%q", len(got), id, len(payloads), got)
	}
	for i, l := range got {
		var b []byte
		for _, h := range strings.Fields(l) {
			var x byte
			if _, err := fmt.Sscanf(h, "%02x", &x); err != nil {
				t.Fatalf("entry %d: %q: %v", i, l, err)
			}
			b = append(b, x)
		}
		// The ring buffer rounds entries up to 4 bytes; the padding shows.
		if !bytes.HasPrefix(b, payloads[i]) || len(b)-len(payloads[i]) >= 4 {
			t.Errorf("entry %d: got % x, want % x (plus up to 3 bytes of padding)", i, b, payloads[i])
		}
	}
	if binary.LittleEndian.Uint64(payloads[0]) != 0x1122334455667788 {
		t.Errorf("payload layout changed: % x", payloads[0])
	}
}

func TestAttachAllPattern(t *testing.T) {
	tr := newTracer(t, ftrace.Text)
	if err := tr.AttachAll("ftracetest:late_*"); err != nil {
		t.Fatal(err)
	}
	if err := tr.AttachAll("["); err == nil {
		t.Error("bad pattern accepted")
	}
	// Defined after AttachAll: the subscription attaches it.
	late := usertrace.NewEvent[Bench]("ftracetest", "late_one")
	late.Emit(Bench{A: 1, B: 2, S: "x"})
	benchEvent.Emit(Bench{A: 3}) // does not match
	got := traceLines(t, tr, ": tracing_mark_write: ")
	want := `ftracetest:late_one: a=1, b=2, s="x"`
	if len(got) != 1 || got[0] != want {
		t.Errorf("got %q, want [%q]", got, want)
	}
}

func TestNoInstance(t *testing.T) {
	mountTracefs(t)
	_, err := ftrace.New(ftrace.Config{Instance: "usertrace-does-not-exist"})
	if err == nil || !strings.Contains(err.Error(), "CreateInstance") {
		t.Errorf("got %v, want an error saying how to create the instance", err)
	}
	if _, err := ftrace.New(ftrace.Config{Instance: "../x"}); err == nil {
		t.Error("instance name with a slash accepted")
	}
	if _, err := ftrace.New(ftrace.Config{Root: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "mount -t tracefs") {
		t.Errorf("got %v, want ErrNoTracefs saying how to mount", err)
	}
}

func TestZeroAllocs(t *testing.T) {
	for _, mode := range []ftrace.Mode{ftrace.Text, ftrace.Raw} {
		t.Run(mode.String(), func(t *testing.T) {
			tr := newTracer(t, mode)
			a, err := tr.Attach(benchEvent.Point())
			if err != nil {
				t.Fatal(err)
			}
			defer a.Detach()
			v := Bench{A: 42, B: 7, S: "0123456789abcdef"}
			if n := testing.AllocsPerRun(1000, func() { benchEvent.Emit(v) }); n != 0 {
				t.Errorf("%v allocations per event, want 0", n)
			}
		})
	}
}

func TestCloseRace(t *testing.T) {
	tr := newTracer(t, ftrace.Text)
	if _, err := tr.Attach(benchEvent.Point()); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	for range 4 {
		go func() {
			for {
				select {
				case <-done:
					return
				default:
					benchEvent.Emit(Bench{A: 1})
				}
			}
		}()
	}
	time.Sleep(10 * time.Millisecond)
	if err := tr.Close(); err != nil {
		t.Error(err)
	}
	close(done)
	if n, err := tr.Errors(); n != 0 {
		t.Errorf("%d write errors during Close: %v", n, err)
	}
}

func benchmark(b *testing.B, mode ftrace.Mode) {
	tr := newTracer(b, mode)
	// Keep the buffer small and overwriting: the benchmark measures the
	// write, not the memory.
	os.WriteFile(filepath.Join(tr.Dir(), "buffer_size_kb"), []byte("256"), 0)
	a, err := tr.Attach(benchEvent.Point())
	if err != nil {
		b.Fatal(err)
	}
	defer a.Detach()
	v := Bench{A: 42, B: 7, S: "0123456789abcdef"}
	b.ReportAllocs()
	for b.Loop() {
		benchEvent.Emit(v)
	}
}

// BenchmarkFtraceText measures one event through trace_marker. The anchor
// (../shared/anchors) measured a bare trace_marker write at ≈ 1520 ns here.
func BenchmarkFtraceText(b *testing.B) { benchmark(b, ftrace.Text) }

// BenchmarkFtraceRaw measures one event through trace_marker_raw.
func BenchmarkFtraceRaw(b *testing.B) { benchmark(b, ftrace.Raw) }
