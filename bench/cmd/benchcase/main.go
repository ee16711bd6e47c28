// Command benchcase runs one Go measurement of the benchmark suite and prints
// it as one line of JSON on stdout. scripts/bench (through cmd/benchrun)
// starts it once per repetition, so that every figure comes from a fresh
// process and repetitions of different systems interleave.
//
//	benchcase -case NAME [-n EVENTS] [-g GOROUTINES] [-tracers T] [-events E] [-size BYTES]
//
// Every case emits the same payload (a uint64, a uint32 and a 16-byte
// string; -size switches to a byte slice of that many bytes) -n times in all,
// split over -g goroutines, after a warm-up of n/10 events (capped at
// 100,000; none for the "ut-record" case, whose events are all counted by the
// recorder). The loop functions are named loop* and never inlined, so that
// valgrind --tool=callgrind --toggle-collect='main.loop*' counts only them.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/trace"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	oteltrace "go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/usertrace/usertrace"
	"github.com/usertrace/usertrace/kernel/ftrace"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/ust"
)

// Three is the benchmark event: the payload the LTTng-UST program and the
// anchors (../shared/anchors) use.
type Three struct {
	A uint64
	B uint32
	S string
}

// Blob is the event of the payload-size scaling runs.
type Blob struct {
	Data []byte
}

// str is the 16-byte string of every payload.
const str = "sixteen bytes!!!"

// Result is what one run reports; cmd/benchrun reads it.
type Result struct {
	Case           string            `json:"case"`
	N              uint64            `json:"n"`          // events measured (disabled loops: iterations)
	Goroutines     int               `json:"goroutines"` // emitting goroutines
	WallNs         int64             `json:"wall_ns"`
	NsPerEvent     float64           `json:"ns_per_event"`     // wall / N
	CPUNsPerEvent  float64           `json:"cpu_ns_per_event"` // process user+system CPU / N
	AllocsPerEvent float64           `json:"allocs_per_event"` // heap allocations / N (every goroutine)
	BytesPerEvent  float64           `json:"alloc_bytes_per_event"`
	Lost           *uint64           `json:"lost,omitempty"` // events the system says it dropped
	Extra          map[string]string `json:"extra,omitempty"`
}

var (
	caseName = flag.String("case", "", "case to run (see cases)")
	nEvents  = flag.Uint64("n", 1_000_000, "events in all")
	nG       = flag.Int("g", 1, "emitting goroutines")
	nTracers = flag.Int("tracers", 1, "tracers attached (ut-callback, ut-ring)")
	nDefined = flag.Int("events", 0, "events defined in the process before the measured one (ut-ring, ut-disabled)")
	size     = flag.Int("size", -1, "payload: a byte slice of this many bytes instead of the 3-field payload (ut-ring)")
	warm     = flag.Bool("warm", true, "run a warm-up before measuring")
)

// loop emits n events from goroutine g.
type loop func(g int, n uint64)

// setup prepares a case and returns its loop and a function run after the
// measurement (it may fill in Lost and Extra).
type setup func(r *Result) (loop, func() error, error)

var cases = map[string]setup{
	"ut-disabled":      utDisabled,
	"ut-callback":      utCallback,
	"ut-ring":          utRing,
	"ut-record":        utRecord,
	"ut-ftrace":        utFtrace,
	"slog-enabled":     slogCase(true),
	"slog-disabled":    slogCase(false),
	"zap-enabled":      zapCase(true),
	"zap-disabled":     zapCase(false),
	"zerolog-enabled":  zerologCase(true),
	"zerolog-disabled": zerologCase(false),
	"rtrace-off":       rtraceOff,
	"rtrace-start":     rtraceStart,
	"rtrace-flight":    rtraceFlight,
	"otel-span":        otelSpan,
	"otel-noop":        otelNoop,
}

func main() {
	flag.Parse()
	s, ok := cases[*caseName]
	if !ok {
		fmt.Fprintf(os.Stderr, "benchcase: unknown case %q\n", *caseName)
		os.Exit(2)
	}
	r := Result{Case: *caseName, N: *nEvents, Goroutines: *nG}
	l, done, err := s(&r)
	if err != nil {
		fmt.Fprintf(os.Stderr, "benchcase %s: %v\n", *caseName, err)
		os.Exit(1)
	}
	if *warm && *caseName != "ut-record" {
		run(l, 1, min(*nEvents/10, 100_000))
	}
	runtime.GC()
	var m0, m1 runtime.MemStats
	var u0, u1 syscall.Rusage
	runtime.ReadMemStats(&m0)
	syscall.Getrusage(syscall.RUSAGE_SELF, &u0)
	wall := run(l, *nG, *nEvents)
	syscall.Getrusage(syscall.RUSAGE_SELF, &u1)
	runtime.ReadMemStats(&m1)
	if done != nil {
		if err := done(); err != nil {
			fmt.Fprintf(os.Stderr, "benchcase %s: %v\n", *caseName, err)
			os.Exit(1)
		}
	}
	n := float64(*nEvents)
	cpu := time.Duration(u1.Utime.Nano()-u0.Utime.Nano()) + time.Duration(u1.Stime.Nano()-u0.Stime.Nano())
	r.WallNs = wall.Nanoseconds()
	r.NsPerEvent = float64(wall.Nanoseconds()) / n
	r.CPUNsPerEvent = float64(cpu.Nanoseconds()) / n
	// ReadMemStats itself allocates nothing; the GC before m0 leaves the
	// warm-up's garbage out.
	r.AllocsPerEvent = float64(m1.Mallocs-m0.Mallocs) / n
	r.BytesPerEvent = float64(m1.TotalAlloc-m0.TotalAlloc) / n
	json.NewEncoder(os.Stdout).Encode(r)
}

// run starts g goroutines that emit n events in all (n/g each, the first
// ones taking the remainder) and returns the wall time from the moment they
// are released to the moment the last one ends.
func run(l loop, g int, n uint64) time.Duration {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	for i := range g {
		per := n / uint64(g)
		if uint64(i) < n%uint64(g) {
			per++
		}
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			l(i, per)
		}()
	}
	ready.Wait()
	t0 := time.Now()
	close(start)
	done.Wait()
	return time.Since(t0)
}

// ---------------------------------------------------------------- usertrace

var defineMu sync.Mutex

// defineExtra defines n events besides the measured ones.
func defineExtra(n int) {
	defineMu.Lock()
	defer defineMu.Unlock()
	for i := range n {
		usertrace.NewEvent[Three]("bench_extra", "e"+strconv.Itoa(i))
	}
}

var (
	evThree usertrace.Event[Three]
	evBlob  usertrace.Event[Blob]
	blob    []byte
)

// defineMeasured defines the measured events (after the -events extra ones,
// so that the measured event is the last of the catalog).
func defineMeasured() {
	defineExtra(*nDefined)
	evThree = usertrace.NewEvent[Three]("bench", "three")
	evBlob = usertrace.NewEvent[Blob]("bench", "blob")
	if *size >= 0 {
		blob = make([]byte, *size)
		for i := range blob {
			blob[i] = byte(i)
		}
	}
}

func utDisabled(r *Result) (loop, func() error, error) {
	defineMeasured()
	return loopUTDisabled, nil, nil
}

// loopUTDisabled is the guarded call site with nothing attached: one load
// and a branch; the value is not built.
//
//go:noinline
func loopUTDisabled(g int, n uint64) {
	for i := uint64(0); i < n; i++ {
		if evThree.Enabled() {
			evThree.Emit(Three{A: i, B: uint32(i), S: str})
		}
	}
}

func utCallback(r *Result) (loop, func() error, error) {
	defineMeasured()
	for range *nTracers {
		if _, err := evThree.Attach(usertrace.TracerFunc(func(usertrace.Record) {})); err != nil {
			return nil, nil, err
		}
	}
	return loopUTEmit, nil, nil
}

// loopUTEmit emits the 3-field event (whatever is attached).
//
//go:noinline
func loopUTEmit(g int, n uint64) {
	for i := uint64(0); i < n; i++ {
		evThree.Emit(Three{A: i, B: uint32(i), S: str})
	}
}

// loopUTBlob emits the byte-slice event.
//
//go:noinline
func loopUTBlob(g int, n uint64) {
	for i := uint64(0); i < n; i++ {
		evBlob.Emit(Blob{Data: blob})
	}
}

// utRing attaches -tracers user-space tracers, each with its own ring in
// flight-recorder (overwrite) mode: nobody drains them, so this is the cost
// of writing an event into shared memory, with nothing lost to a full ring.
func utRing(r *Result) (loop, func() error, error) {
	defineMeasured()
	var trs []*ust.Tracer
	for range *nTracers {
		tr, err := ust.New(ust.Config{Ring: ring.Config{Overwrite: true}})
		if err != nil {
			return nil, nil, err
		}
		trs = append(trs, tr)
		if _, err := tr.Attach(evThree.Point()); err != nil {
			return nil, nil, err
		}
		if _, err := tr.Attach(evBlob.Point()); err != nil {
			return nil, nil, err
		}
	}
	done := func() error {
		var lost uint64
		for _, tr := range trs {
			lost += tr.Lost()
			tr.Close()
		}
		r.Lost = &lost
		return nil
	}
	if *size >= 0 {
		return loopUTBlob, done, nil
	}
	return loopUTEmit, done, nil
}

// utRecord only emits: run it under `usertrace record`, whose agent attaches
// the user-space tracer and whose daemon drains the rings to disk.
func utRecord(r *Result) (loop, func() error, error) {
	defineMeasured()
	if !evThree.Enabled() {
		return nil, nil, fmt.Errorf("bench:three is not enabled: run under usertrace record")
	}
	return loopUTEmit, nil, nil
}

// utFtrace attaches usertrace's ftrace tracer (text mode) writing into the
// tracefs instance named by $BENCH_FTRACE_INSTANCE.
func utFtrace(r *Result) (loop, func() error, error) {
	defineMeasured()
	inst := os.Getenv("BENCH_FTRACE_INSTANCE")
	if inst == "" {
		inst = "usertrace_bench"
	}
	tr, err := ftrace.New(ftrace.Config{Mode: ftrace.Text, Instance: inst, CreateInstance: true})
	if err != nil {
		return nil, nil, err
	}
	if _, err := tr.Attach(evThree.Point()); err != nil {
		return nil, nil, err
	}
	return loopUTEmit, func() error {
		errs, _ := tr.Errors()
		r.Lost = &errs
		return tr.Close()
	}, nil
}

// ---------------------------------------------------------------- loggers
//
// Each logger writes JSON with a timestamp to io.Discard, the payload as
// three typed fields, through its allocation-free API. Disabled: the logger
// is at level warn and the call is at level info.

var (
	slogger *slog.Logger
	zlogger *zap.Logger
	zerolg  zerolog.Logger
)

func slogCase(enabled bool) setup {
	return func(r *Result) (loop, func() error, error) {
		lvl := slog.LevelInfo
		if !enabled {
			lvl = slog.LevelWarn
		}
		slogger = slog.New(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: lvl}))
		return loopSlog, nil, nil
	}
}

//go:noinline
func loopSlog(g int, n uint64) {
	ctx := context.Background()
	for i := uint64(0); i < n; i++ {
		slogger.LogAttrs(ctx, slog.LevelInfo, "three", slog.Uint64("a", i), slog.Uint64("b", uint64(uint32(i))), slog.String("s", str))
	}
}

func zapCase(enabled bool) setup {
	return func(r *Result) (loop, func() error, error) {
		lvl := zapcore.InfoLevel
		if !enabled {
			lvl = zapcore.WarnLevel
		}
		zlogger = zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.AddSync(io.Discard), lvl))
		return loopZap, nil, nil
	}
}

//go:noinline
func loopZap(g int, n uint64) {
	for i := uint64(0); i < n; i++ {
		// Check, then Write: zap's allocation-free form (a bare Info call
		// allocates its variadic field slice even when disabled).
		if ce := zlogger.Check(zapcore.InfoLevel, "three"); ce != nil {
			ce.Write(zap.Uint64("a", i), zap.Uint32("b", uint32(i)), zap.String("s", str))
		}
	}
}

func zerologCase(enabled bool) setup {
	return func(r *Result) (loop, func() error, error) {
		lvl := zerolog.InfoLevel
		if !enabled {
			lvl = zerolog.WarnLevel
		}
		zerolg = zerolog.New(io.Discard).Level(lvl).With().Timestamp().Logger()
		return loopZerolog, nil, nil
	}
}

//go:noinline
func loopZerolog(g int, n uint64) {
	for i := uint64(0); i < n; i++ {
		zerolg.Info().Uint64("a", i).Uint32("b", uint32(i)).Str("s", str).Msg("three")
	}
}

// ---------------------------------------------------------------- runtime/trace
//
// trace.Log takes a string: the payload is formatted into a reused buffer
// (runtime/trace copies the message into its own buffer).

func rtraceOff(r *Result) (loop, func() error, error) { return loopRtrace, nil, nil }

func rtraceStart(r *Result) (loop, func() error, error) {
	if err := trace.Start(io.Discard); err != nil {
		return nil, nil, err
	}
	return loopRtrace, func() error { trace.Stop(); return nil }, nil
}

func rtraceFlight(r *Result) (loop, func() error, error) {
	fr := trace.NewFlightRecorder(trace.FlightRecorderConfig{MaxBytes: 8 << 20})
	if err := fr.Start(); err != nil {
		return nil, nil, err
	}
	return loopRtrace, func() error { fr.Stop(); return nil }, nil
}

//go:noinline
func loopRtrace(g int, n uint64) {
	ctx := context.Background()
	var buf [64]byte
	for i := uint64(0); i < n; i++ {
		if trace.IsEnabled() {
			b := strconv.AppendUint(buf[:0], i, 10)
			b = append(b, ' ')
			b = strconv.AppendUint(b, uint64(uint32(i)), 10)
			b = append(b, ' ')
			b = append(b, str...)
			trace.Log(ctx, "three", unsafe.String(&b[0], len(b)))
		}
	}
}

// ---------------------------------------------------------------- OpenTelemetry

// countExporter is a no-op exporter that counts what it is given.
type countExporter struct{ n atomic.Uint64 }

func (e *countExporter) ExportSpans(_ context.Context, s []sdktrace.ReadOnlySpan) error {
	e.n.Add(uint64(len(s)))
	return nil
}
func (e *countExporter) Shutdown(context.Context) error { return nil }

var otelTracer oteltrace.Tracer

// otelSpan: a sampled span with 3 attributes through the SDK's batch span
// processor (blocking: it waits rather than drops) and a no-op exporter.
func otelSpan(r *Result) (loop, func() error, error) {
	exp := &countExporter{}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithSampler(sdktrace.AlwaysSample()),
		sdktrace.WithSpanProcessor(sdktrace.NewBatchSpanProcessor(exp, sdktrace.WithBlocking())),
	)
	otelTracer = tp.Tracer("bench")
	warmN := uint64(0)
	if *warm {
		warmN = min(*nEvents/10, 100_000)
	}
	return loopOtel, func() error {
		ctx := context.Background()
		if err := tp.ForceFlush(ctx); err != nil {
			return err
		}
		lost := *nEvents + warmN - exp.n.Load()
		r.Lost = &lost
		return tp.Shutdown(ctx)
	}, nil
}

// otelNoop: the same call with the API's no-op provider (what a program runs
// when no SDK is installed).
func otelNoop(r *Result) (loop, func() error, error) {
	otelTracer = noop.NewTracerProvider().Tracer("bench")
	return loopOtel, nil, nil
}

//go:noinline
func loopOtel(g int, n uint64) {
	ctx := context.Background()
	for i := uint64(0); i < n; i++ {
		_, sp := otelTracer.Start(ctx, "three", oteltrace.WithAttributes(
			attribute.Int64("a", int64(i)), attribute.Int64("b", int64(uint32(i))), attribute.String("s", str)))
		sp.End()
	}
}
