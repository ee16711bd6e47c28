package usertrace_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/usertrace/usertrace"
)

// The benchmark payload shared with the anchors (../shared/anchors): a
// uint64, a uint32 and a 16-byte string.
var benchValue = threeFields{A: 42, B: 7, S: "sixteen bytes!!!"}

var (
	benchDisabled = usertrace.NewEvent[threeFields]("bench", "disabled")
	benchCallback = usertrace.NewEvent[threeFields]("bench", "callback")
)

// sinkU64 keeps the empty loop from being optimized away.
var sinkU64 uint64

// BenchmarkEmptyLoop is the floor the disabled benchmarks compare with: a
// loop doing nothing but count (0.30 ns here, the same as Debian's LTTng-UST
// disabled tracepoint). The disabled benchmarks use the same plain b.N loop:
// b.Loop's own per-iteration cost would hide the sub-nanosecond difference.
func BenchmarkEmptyLoop(b *testing.B) {
	b.ReportAllocs()
	var n uint64
	for i, end := 0, b.N; i < end; i++ {
		n++
	}
	sinkU64 = n
}

// BenchmarkDisabled: nothing attached, the guarded call site: one load of
// the enable word and a branch; the value is not built.
func BenchmarkDisabled(b *testing.B) {
	b.ReportAllocs()
	for i, end := 0, b.N; i < end; i++ {
		if benchDisabled.Enabled() {
			benchDisabled.Emit(threeFields{A: uint64(i), B: 7, S: "sixteen bytes!!!"})
		}
	}
}

// BenchmarkDisabledUnguarded: a bare Emit call. Go evaluates the argument
// before the inlined check, so this also pays for building the value.
func BenchmarkDisabledUnguarded(b *testing.B) {
	b.ReportAllocs()
	for i, end := 0, b.N; i < end; i++ {
		benchDisabled.Emit(threeFields{A: uint64(i), B: 7, S: "sixteen bytes!!!"})
	}
}

// BenchmarkEmitCallback: one no-op in-process callback attached.
func BenchmarkEmitCallback(b *testing.B) {
	at, err := benchCallback.Attach(usertrace.TracerFunc(func(usertrace.Record) {}))
	if err != nil {
		b.Fatal(err)
	}
	defer at.Detach()
	b.ReportAllocs()
	for b.Loop() {
		benchCallback.Emit(benchValue)
	}
}

// BenchmarkEmitCallbacks: cost per attached tracer.
func BenchmarkEmitCallbacks(b *testing.B) {
	for _, n := range []int{1, 2, 4} {
		b.Run(fmt.Sprintf("tracers=%d", n), func(b *testing.B) {
			ev := usertrace.NewEvent[threeFields]("bench", fmt.Sprintf("callbacks_%d", n))
			for i := 0; i < n; i++ {
				at, _ := ev.Attach(usertrace.TracerFunc(func(usertrace.Record) {}))
				defer at.Detach()
			}
			b.ReportAllocs()
			for b.Loop() {
				ev.Emit(benchValue)
			}
		})
	}
}

// BenchmarkDefine: the cost of defining one event (done once per event, at
// start-up).
func BenchmarkDefine(b *testing.B) {
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		usertrace.NewEvent[threeFields]("bench_define", fmt.Sprintf("e%d", i))
		i++
	}
}

var defined struct {
	sync.Mutex
	n int
}

// defineUpTo makes the process hold at least n events in all.
func defineUpTo(n int) {
	defined.Lock()
	defer defined.Unlock()
	for ; defined.n < n; defined.n++ {
		usertrace.NewEvent[threeFields]("bench_population", fmt.Sprintf("e%d", defined.n))
	}
}

// BenchmarkPopulation: the disabled and enabled costs must not change with
// the number of events defined in the process.
func BenchmarkPopulation(b *testing.B) {
	for _, n := range []int{10, 1000, 100000} {
		defineUpTo(n)
		ev := usertrace.NewEvent[threeFields]("bench", fmt.Sprintf("population_%d", n))
		b.Run(fmt.Sprintf("events=%d/disabled", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev.Emit(benchValue)
			}
		})
		b.Run(fmt.Sprintf("events=%d/callback", n), func(b *testing.B) {
			at, _ := ev.Attach(usertrace.TracerFunc(func(usertrace.Record) {}))
			defer at.Detach()
			b.ReportAllocs()
			for b.Loop() {
				ev.Emit(benchValue)
			}
		})
	}
}
