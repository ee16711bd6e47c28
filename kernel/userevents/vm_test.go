package userevents

// Tests that need a kernel with user_events. scripts/kernel-vm boots one and
// runs them (-test.run '^(TestVM|TestAllTracers)'); elsewhere they skip.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/usertrace/usertrace"
	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/tracer"
)

// requireUserEvents returns a Tracer, or skips with the reason when the
// kernel has no user_events, except in the VM built for them, where that is
// a failure.
func requireUserEvents(t *testing.T, cfg Config) *Tracer {
	t.Helper()
	tr, err := New(cfg)
	if errors.Is(err, ErrNotSupported) && !inVM {
		t.Skipf("skipping: %v (scripts/kernel-vm runs this test in a VM that has them)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tr.Close(); err != nil {
			t.Error(err)
		}
	})
	return tr
}

func writeFile(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0); err != nil {
		t.Fatal(err)
	}
}

// waitKernelBit waits until bit 31 of p's enable word is as wanted: the
// kernel updates it from its own context, with no call from us.
func waitKernelBit(t *testing.T, p *tracer.Point, want bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for p.Word().State().Kernel != want {
		if time.Now().After(deadline) {
			t.Fatalf("bit 31 of %s's enable word is %v after 5 s, want %v (word %#x)", p.Desc().FullName(), !want, want, p.Word().Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// traceEntries returns what follows "NAME:" in each entry of the trace file
// in dir.
func traceEntries(t *testing.T, dir, name string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "trace"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if i := strings.Index(l, " "+name+":"); i >= 0 && !strings.HasPrefix(l, "#") {
			out = append(out, l[i+len(name)+2:])
		}
	}
	return out
}

func clearTrace(t *testing.T, dir string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(dir, "trace"), os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	writeFile(t, filepath.Join(dir, "tracing_on"), "1")
}

// everyText is how the trace file prints everyValue(): print_fields in
// kernel/trace/trace_output.c (1-byte fields as 'c'(n), others as 0x%x (%d),
// __rel_loc char[] as the string, other __rel_loc arrays as bytes in hex).
const everyText = ` b=(1) i8='A'(65) i16=0xfffe (65534) i32=0xfffffffd (-3) i64=0xfffffffffffffffc (-4)` +
	` u8='B'(66) u16=0x1f4 (500) u32=0x7 (7) u64=0x10000000000 (1099511627776)` +
	` f32=0x3fc00000 (1069547520) f64=0xc000000000000000 (-4611686018427387904)` +
	` s=hello raw=de,ad d=0x5dc (1500) at=0xde0b6b3a7640000 (1000000000000000000) m=(1)` +
	` arr=01,00,02,00,03,00 seq=ff,ff,ff,ff in_host=h in_port=0x50 (80)`

// emptyText is Every{At: time.Unix(0, 0)} printed.
const emptyText = ` b=(0) i8=(0) i16=0x0 (0) i32=0x0 (0) i64=0x0 (0) u8=(0) u16=0x0 (0) u32=0x0 (0) u64=0x0 (0)` +
	` f32=0x0 (0) f64=0x0 (0) s= raw= d=0x0 (0) at=0x0 (0) m=(0) arr=00,00,00,00,00,00 seq= in_host= in_port=0x0 (0)`

func TestVMEnableBitAndFields(t *testing.T) {
	tr := requireUserEvents(t, Config{})
	p := every.Point()
	reg, err := tr.Attach(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("registered %s/%s: %q, write index %d", reg.System(), reg.Name(), reg.Format(), reg.index)
	if reg.Format() != everyFormat {
		t.Errorf("format %q, want %q", reg.Format(), everyFormat)
	}
	if _, err := tr.Attach(p); !errors.Is(err, ErrAlreadyRegistered) {
		t.Errorf("second registration: got %v, want ErrAlreadyRegistered", err)
	}
	evDir := filepath.Join(tr.Root(), "events", reg.System(), reg.Name())
	if fmtb, err := os.ReadFile(filepath.Join(evDir, "format")); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("kernel's format file:\n%s", fmtb)
	}
	if w := p.Word().Load(); w != 0 {
		t.Fatalf("enable word %#x before anything enabled the event, want 0", w)
	}
	every.Emit(everyValue()) // disabled: goes nowhere

	clearTrace(t, tr.Root())
	writeFile(t, filepath.Join(evDir, "enable"), "1")
	waitKernelBit(t, p, true)
	if st := p.Word().State(); st.Attachments != 0 || st.Agents != 0 {
		t.Errorf("enable word %+v: only the kernel bit should be set", st)
	}
	every.Emit(everyValue())
	every.Emit(Every{At: time.Unix(0, 0)})
	writeFile(t, filepath.Join(evDir, "enable"), "0")
	waitKernelBit(t, p, false)
	if w := p.Word().Load(); w != 0 {
		t.Errorf("enable word %#x after disable, want 0", w)
	}
	every.Emit(everyValue()) // disabled again

	got := traceEntries(t, tr.Root(), reg.Name())
	want := []string{everyText, emptyText}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("trace entries:\n got %q\nwant %q", got, want)
	}
	if n, err := tr.Errors(); n != 0 {
		t.Errorf("%d errors: %v", n, err)
	}

	// Unregister: the kernel stops updating the word, and clears bit 31 if
	// the event is enabled at that moment.
	writeFile(t, filepath.Join(evDir, "enable"), "1")
	waitKernelBit(t, p, true)
	if err := reg.Detach(); err != nil {
		t.Fatal(err)
	}
	if w := p.Word().Load(); w != 0 {
		t.Errorf("enable word %#x after unregister, want 0", w)
	}
	writeFile(t, filepath.Join(evDir, "enable"), "0")
}

type changedV1 struct{ A uint32 }
type changedV2 struct{ A uint64 }

func TestVMFormatChanged(t *testing.T) {
	same := func(*catalog.Event) string { return "uevtest_changed" }
	tr1 := requireUserEvents(t, Config{Name: same})
	v1 := usertrace.NewEvent[changedV1]("uevtest", "changed_v1")
	v2 := usertrace.NewEvent[changedV2]("uevtest", "changed_v2")
	if _, err := tr1.Attach(v1.Point()); err != nil {
		t.Fatal(err)
	}
	tr2 := requireUserEvents(t, Config{Name: same})
	_, err := tr2.Attach(v2.Point())
	if !errors.Is(err, ErrFormatChanged) || !strings.Contains(err.Error(), "MultiFormat") {
		t.Fatalf("same name, other fields: got %v, want ErrFormatChanged saying what to do", err)
	}
	t.Logf("as expected: %v", err)

	// With MULTI_FORMAT (6.10+; this kernel is 6.12) the second format gets
	// its own tracepoint.
	tr3 := requireUserEvents(t, Config{Name: same, MultiFormat: true})
	reg, err := tr3.Attach(v2.Point())
	if err != nil {
		t.Fatal(err)
	}
	if !reg.MultiFormat() || reg.System() != multiSystemName {
		t.Fatalf("multi-format registration: flags %#x, system %s", reg.flags, reg.System())
	}
	m, _ := filepath.Glob(filepath.Join(tr3.Root(), "events", multiSystemName, "uevtest_changed.*"))
	if len(m) != 1 {
		t.Errorf("multi-format tracepoints: %v, want one uevtest_changed.<id>", m)
	}
}

func TestVMPersist(t *testing.T) {
	type persisted struct{ N uint16 }
	ev := usertrace.NewEvent[persisted]("uevtest", "persisted")
	tr := requireUserEvents(t, Config{Persist: true})
	reg, err := tr.Attach(ev.Point())
	if err != nil {
		t.Fatal(err)
	}
	if !reg.Persistent() {
		t.Fatal("PERSIST not taken as root")
	}
	// The open user_events_data holds a reference to every event it
	// registered until it is closed: close it all.
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(tr.Root(), "events", systemName, reg.Name())
	time.Sleep(50 * time.Millisecond)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("persistent event gone after close: %v", err)
	}
	del := requireUserEvents(t, Config{})
	var derr error
	for range 200 { // EBUSY while the kernel drops its references
		if derr = del.Delete(reg.Name()); derr == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if derr != nil {
		t.Fatal(derr)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("deleted event still in tracefs: %v", err)
	}
}

func TestVMWriteAllocs(t *testing.T) {
	tr := requireUserEvents(t, Config{})
	p := every.Point()
	reg, err := tr.Attach(p)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Detach()
	evDir := filepath.Join(tr.Root(), "events", reg.System(), reg.Name())
	writeFile(t, filepath.Join(evDir, "enable"), "1")
	defer writeFile(t, filepath.Join(evDir, "enable"), "0")
	waitKernelBit(t, p, true)
	v := everyValue()
	if n := testing.AllocsPerRun(100, func() { every.Emit(v) }); n != 0 {
		t.Errorf("%v allocations per user_events write, want 0", n)
	}
	start := time.Now()
	const n = 2000
	for range n {
		every.Emit(v)
	}
	fmt.Printf("user_events write of the every-kind event (in the VM, software emulation): %v/event\n", time.Since(start)/n)
}

// TestVMToggleWhileEmitting enables and disables the event through tracefs
// while goroutines emit, then unregisters under them: no write error (a
// write racing a disable gets EBADF, which is not one), no crash, and the
// word is 0 at the end.
func TestVMToggleWhileEmitting(t *testing.T) {
	type toggled struct {
		N uint64
		S string
	}
	ev := usertrace.NewEvent[toggled]("uevtest", "toggled")
	tr := requireUserEvents(t, Config{})
	reg, err := tr.Attach(ev.Point())
	if err != nil {
		t.Fatal(err)
	}
	en := filepath.Join(tr.Root(), "events", reg.System(), reg.Name(), "enable")
	stop := make(chan struct{})
	done := make(chan struct{})
	for g := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
					ev.Emit(toggled{N: i, S: fmt.Sprint(g)})
				}
			}
		}()
	}
	for i := range 20 {
		writeFile(t, en, fmt.Sprint((i+1)%2))
		time.Sleep(5 * time.Millisecond)
	}
	writeFile(t, en, "1")
	waitKernelBit(t, ev.Point(), true)
	if err := reg.Detach(); err != nil { // while the goroutines write
		t.Error(err)
	}
	close(stop)
	for range 4 {
		<-done
	}
	if n, err := tr.Errors(); n != 0 {
		t.Errorf("%d errors: %v", n, err)
	}
	if w := ev.Point().Word().Load(); w != 0 {
		t.Errorf("word %#x after unregister, want 0", w)
	}
	writeFile(t, en, "0")
}
