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

// BenchmarkDisabled: nothing attached. The floor is an empty loop (0.30 ns
// here, the same as Debian's LTTng-UST disabled tracepoint).
func BenchmarkDisabled(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		benchDisabled.Emit(benchValue)
	}
}

// BenchmarkDisabledGuarded is the Enabled-guarded form of the call site.
func BenchmarkDisabledGuarded(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if benchDisabled.Enabled() {
			benchDisabled.Emit(benchValue)
		}
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
