package tracedir

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/usertrace/usertrace/ring"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if benchRoot != "" {
		os.RemoveAll(benchRoot)
	}
	os.Exit(code)
}

// benchEvents is the size of the benchmark trace: the bench event (uint64,
// uint32, 16-byte string; 33 bytes with its header) on two shards.
const benchEvents = 1 << 20

var (
	benchOnce sync.Once
	benchRoot string
	benchDir  string
	benchErr  error
)

// benchTrace records the benchmark trace once per test binary, with the
// real writer, drained in chunks the way the daemon drains a ring.
func benchTrace(tb testing.TB) string {
	benchOnce.Do(func() {
		if benchRoot, benchErr = os.MkdirTemp("", "tracedir-bench-"); benchErr != nil {
			return
		}
		benchDir = filepath.Join(benchRoot, "bench-1")
		// The recording's cleanups belong to the first benchmark; the files
		// stay until TestMain removes benchRoot.
		rec := newRecording(tb, benchDir, "bench", 1, ring.Config{NumShards: 2})
		_, id := rec.register(threeDesc)
		var p []byte
		for i := range benchEvents {
			p = threePayload(p, uint64(i)*2654435761, uint32(i))
			rec.write(i&1, id, p)
			if i%50000 == 49999 {
				rec.drain()
			}
		}
		rec.drain()
	})
	if benchErr != nil {
		tb.Fatal(benchErr)
	}
	return benchDir
}

func devNull(tb testing.TB) *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { f.Close() })
	return f
}

// cpuTime is the CPU time (user + system) this process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// lastUsertrace is the events/s of the last WriteText benchmark run, for
// the ratio reported by the babeltrace2 one.
var lastUsertrace, lastUsertraceCPU float64

// BenchmarkWriteText writes the 1 Mi-event trace as text to /dev/null with
// WriteText, then with babeltrace2 (its default text output), in one run:
//
//	go test -run='^$' -bench=WriteText -benchtime=3x ./tracedir/
//
// Both report events/s ("Mevents/s") and CPU time per event
// ("cpu-ns/event", user + system); the babeltrace2 one also reports how many
// times faster WriteText was, by wall clock ("x-usertrace") and by CPU time
// ("x-usertrace-cpu").
func BenchmarkWriteText(b *testing.B) {
	dir := benchTrace(b)
	out := devNull(b)
	b.Run("usertrace", func(b *testing.B) {
		var n uint64
		cpu0 := cpuTime()
		for b.Loop() {
			st, err := WriteText(out, TextOptions{}, dir)
			if err != nil || st.Events != benchEvents {
				b.Fatalf("%+v %v", st, err)
			}
			n += st.Events
		}
		lastUsertrace = float64(n) / b.Elapsed().Seconds()
		b.ReportMetric(lastUsertrace/1e6, "Mevents/s")
		lastUsertraceCPU = float64(cpuTime()-cpu0) / float64(n)
		b.ReportMetric(lastUsertraceCPU, "cpu-ns/event")
	})
	b.Run("usertrace-json", func(b *testing.B) {
		var n uint64
		for b.Loop() {
			st, err := WriteJSON(out, TextOptions{}, dir)
			if err != nil || st.Events != benchEvents {
				b.Fatalf("%+v %v", st, err)
			}
			n += st.Events
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds()/1e6, "Mevents/s")
	})
	b.Run("babeltrace2", func(b *testing.B) {
		bt, err := exec.LookPath("babeltrace2")
		if err != nil {
			b.Skip("babeltrace2 not installed (apt-get install babeltrace2): no reference figure")
		}
		var n uint64
		var cpu time.Duration
		for b.Loop() {
			cmd := exec.Command(bt, dir)
			cmd.Stdout = out
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil || stderr.Len() > 0 {
				b.Fatalf("babeltrace2: %v\n%s", err, stderr.String())
			}
			cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			n += benchEvents
		}
		bps := float64(n) / b.Elapsed().Seconds()
		b.ReportMetric(bps/1e6, "Mevents/s")
		cpuPer := float64(cpu) / float64(n)
		b.ReportMetric(cpuPer, "cpu-ns/event")
		if lastUsertrace > 0 {
			// How many times faster WriteText was, by wall clock and by
			// CPU time (the fairer figure on a machine others load too).
			b.ReportMetric(lastUsertrace/bps, "x-usertrace")
			b.ReportMetric(cpuPer/lastUsertraceCPU, "x-usertrace-cpu")
		}
	})
}

// BenchmarkRead is the Reader alone: merge and walk, no formatting.
func BenchmarkRead(b *testing.B) {
	dir := benchTrace(b)
	var n uint64
	for b.Loop() {
		tr, err := Open(dir)
		if err != nil {
			b.Fatal(err)
		}
		r := NewReader(tr)
		for r.Next() {
			n++
		}
		tr.Close()
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds()/1e6, "Mevents/s")
}

// TestBabeltraceReadsTraceDir: babeltrace2 reads a trace directory with its
// hidden .usertrace sidecar, and a session directory holding two, without a
// word on stderr, and prints the same events with the same values.
func TestBabeltraceReadsTraceDir(t *testing.T) {
	bt, err := exec.LookPath("babeltrace2")
	if err != nil {
		t.Skip("babeltrace2 not installed (apt-get install babeltrace2): cannot check the trace with the reference reader")
	}
	root := t.TempDir()
	var recs []*recording
	for i, app := range []string{"one", "two"} {
		rec := newRecording(t, filepath.Join(root, fmt.Sprintf("%s-%d", app, 10+i)), app, 10+i, ring.Config{NumShards: 2, NumSub: 4, SubSize: 4096})
		_, id := rec.register(threeDesc)
		var p []byte
		for j := range 200 {
			p = threePayload(p, uint64(j)*1e15, uint32(j))
			rec.write(j%2, id, p)
		}
		rec.drain()
		recs = append(recs, rec)
	}
	if _, err := os.Stat(filepath.Join(recs[0].dir, SidecarDir, CatalogFile)); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{recs[0].dir, root} {
		cmd := exec.Command(bt, "--clock-cycles", "--no-delta", dir)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil || stderr.Len() > 0 {
			t.Fatalf("babeltrace2 %s: %v\nstderr:\n%s", dir, err, stderr.String())
		}
		var ours bytes.Buffer
		st, err := WriteText(&ours, TextOptions{Time: TimeRaw, NoDelta: true}, dir)
		if err != nil {
			t.Fatal(err)
		}
		btLines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		ourLines := strings.Split(strings.TrimSpace(ours.String()), "\n")
		if len(btLines) != len(ourLines) || uint64(len(ourLines)) != st.Events {
			t.Fatalf("%s: babeltrace2 printed %d lines, WriteText %d", dir, len(btLines), len(ourLines))
		}
		// Same multiset of (timestamp, values): the two order ties differently.
		key := func(l string, bt bool) string {
			ts := strings.TrimLeft(l[1:strings.IndexByte(l, ']')], "0") // babeltrace2 pads to 20 digits
			var a, b string
			if bt {
				fmt.Sscanf(l[strings.Index(l, "{ a = "):], "{ a = %s b = %s", &a, &b)
			} else {
				fmt.Sscanf(l[strings.Index(l, "a="):], "a=%s b=%s", &a, &b)
			}
			return ts + " " + strings.TrimSuffix(a, ",") + " " + strings.TrimSuffix(b, ",")
		}
		count := map[string]int{}
		for i := range btLines {
			count[key(btLines[i], true)]++
			count[key(ourLines[i], false)]--
		}
		for k, v := range count {
			if v != 0 {
				t.Fatalf("%s: event %q: babeltrace2 and WriteText differ (%+d)", dir, k, v)
			}
		}
		t.Logf("%s: %d events read alike; babeltrace2 first line: %s", dir, len(btLines), btLines[0])
	}
}

// TestViewSpeed measures WriteText against babeltrace2 on the benchmark
// trace in one run when USERTRACE_VIEW_SPEED=1 (it takes a few seconds):
//
//	USERTRACE_VIEW_SPEED=1 go test -run=ViewSpeed -v ./tracedir/
func TestViewSpeed(t *testing.T) {
	if os.Getenv("USERTRACE_VIEW_SPEED") == "" {
		t.Skip("set USERTRACE_VIEW_SPEED=1 to measure (a few seconds on a shared machine)")
	}
	bt, err := exec.LookPath("babeltrace2")
	if err != nil {
		t.Skip("babeltrace2 not installed (apt-get install babeltrace2): no reference figure")
	}
	dir := benchTrace(t)
	out := devNull(t)
	best := func(runs int, f func()) time.Duration {
		d := time.Duration(1<<63 - 1)
		for range runs {
			t0 := time.Now()
			f()
			d = min(d, time.Since(t0))
		}
		return d
	}
	ours := best(5, func() {
		if _, err := WriteText(out, TextOptions{}, dir); err != nil {
			t.Fatal(err)
		}
	})
	theirs := best(2, func() {
		cmd := exec.Command(bt, dir)
		cmd.Stdout = out
		if err := cmd.Run(); err != nil {
			t.Fatal(err)
		}
	})
	eps := func(d time.Duration) float64 { return benchEvents / d.Seconds() / 1e6 }
	t.Logf("%d events: WriteText %v (%.2f M events/s), babeltrace2 %v (%.2f M events/s): %.1fx", benchEvents, ours, eps(ours), theirs, eps(theirs), theirs.Seconds()/ours.Seconds())
	if theirs < 10*ours {
		t.Errorf("WriteText is only %.1fx babeltrace2, want 10x", theirs.Seconds()/ours.Seconds())
	}
}
