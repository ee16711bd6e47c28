package usertrace

import (
	"fmt"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/usertrace/usertrace/agent"
	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/internal/noescape"
	"github.com/usertrace/usertrace/internal/plan"
	"github.com/usertrace/usertrace/tracer"
)

// Event is a typed tracepoint whose fields are those of the struct T. Define
// events once, at package level, with [NewEvent]; an Event is a small value
// that may be copied freely.
type Event[T any] struct {
	// word is first so that the disabled fast path is: load this pointer
	// (immutable after definition, stays in cache), then one atomic load of
	// the enable word it points to.
	// The Go inliner does not see through enable.Word's methods from here
	// (see enable.Word.Uint32), so the word is held as a plain atomic.
	word *atomic.Uint32
	d    *definition
}

// definition is what every copy of an Event shares.
type definition struct {
	point     *tracer.Point
	plan      *plan.Plan
	fast      func(d, v unsafe.Pointer, rem int) (int, bool) // plan.Fast, if it fits the stack buffer
	oversized atomic.Uint64
}

// MaxPayload is the largest encoded payload an event may have. An event
// whose fields encode to more is not delivered and is counted by
// [Event.Oversized].
const MaxPayload = 64 << 10

// stackPayload is the payload size encoded on the stack; larger ones borrow a
// buffer from a pool. The buffer is zeroed on every emit, so its size is a
// cost: with one no-op callback, 64 bytes measured 10.3 ns, 128 bytes 10.7–11.2
// and 256 bytes 11.6–12 (BenchmarkEmitCallback, same run). 128 bytes holds
// typical events: the 3-field benchmark event takes 29.
const stackPayload = 128

// Option configures an event definition.
type Option interface {
	apply(*catalog.Event)
}

type optionFunc func(*catalog.Event)

func (f optionFunc) apply(e *catalog.Event) { f(e) }

// WithLevel sets the event's level (default [LevelInfo]).
func WithLevel(l Level) Option { return optionFunc(func(e *catalog.Event) { e.Level = l }) }

// WithAttr attaches a key/value attribute to the event's description.
func WithAttr(key, value string) Option {
	return optionFunc(func(e *catalog.Event) { e.Attrs = append(e.Attrs, catalog.Attr{Key: key, Value: value}) })
}

// NewEvent defines the event provider:name whose fields are those of the
// struct T, and panics if the definition is wrong. Use it for package-level
// variables, where a mistake must stop the program at start-up:
//
//	type RequestDone struct {
//		Method string
//		Status uint16
//		Took   time.Duration
//	}
//
//	var requestDone = usertrace.NewEvent[RequestDone]("http", "request_done")
//
// Field names are the Go names in snake_case, or the name given in a
// `trace:"name"` tag; `trace:"-"` leaves a field out, and unexported fields
// are left out. Supported field types: bool, the sized integers (int and uint
// count as 64-bit), float32/64, string, []byte, time.Duration, time.Time,
// integer types with a TraceEnum method ([Enumer]), arrays and slices of
// those scalars, and nested structs.
func NewEvent[T any](provider, name string, opts ...Option) Event[T] {
	e, err := define[T](provider, name, 2, opts)
	if err != nil {
		panic(err)
	}
	return e
}

// DefineEvent is [NewEvent] returning the error instead of panicking, for
// events defined at run time.
func DefineEvent[T any](provider, name string, opts ...Option) (Event[T], error) {
	return define[T](provider, name, 2, opts)
}

// plans caches compiled plans per Go type: defining many events of one type
// compiles it once.
var plans sync.Map // reflect.Type → *plan.Plan

func define[T any](provider, name string, skip int, opts []Option) (Event[T], error) {
	t := reflect.TypeFor[T]()
	var p *plan.Plan
	if v, ok := plans.Load(t); ok {
		p = v.(*plan.Plan)
	} else {
		var err error
		if p, err = plan.Compile(t); err != nil {
			return Event[T]{}, fmt.Errorf("define %s:%s: %w", provider, name, err)
		}
		plans.Store(t, p)
	}
	desc := catalog.Event{
		Provider: provider,
		Name:     name,
		Level:    LevelInfo,
		Fields:   p.Fields,
	}
	if _, file, line, ok := runtime.Caller(skip); ok {
		desc.File, desc.Line = file, uint32(line)
	}
	for _, o := range opts {
		o.apply(&desc)
	}
	pt, err := tracer.Register(desc)
	if err != nil {
		return Event[T]{}, err
	}
	agent.Start() // once per process: find the daemons in scope, in the background
	d := &definition{point: pt, plan: p}
	if p.FixedSize() <= stackPayload {
		d.fast = p.Fast()
	}
	return Event[T]{word: pt.Word().Uint32(), d: d}, nil
}

// Enabled reports whether anything wants the event: one atomic load and a
// branch, inlined at the call site. Guard an Emit with it when building the
// value costs something, and the value is then not built at all when tracing
// is off:
//
//	if requestDone.Enabled() {
//		requestDone.Emit(RequestDone{Method: r.Method, Status: status, Took: time.Since(start)})
//	}
func (e Event[T]) Enabled() bool { return e.word.Load() != 0 }

// Emit fires the event with the field values in v. When nothing is attached
// it returns after one atomic load; when something is, it encodes v once
// (without allocating, for payloads up to 128 bytes) and hands the payload to
// every attached tracer, on this goroutine.
func (e Event[T]) Emit(v T) {
	if e.word.Load() != 0 {
		e.d.emit(unsafe.Pointer(&v))
	}
}

// emit is the enabled path, kept out of line (and out of the generic code)
// so that Emit inlines. v points to a value of the type d.plan was compiled
// for.
func (d *definition) emit(v unsafe.Pointer) {
	var buf [stackPayload]byte
	var n int
	var ok bool
	if d.fast != nil {
		// The specialized encoder, called directly: one call less than
		// through Encode.
		n, ok = d.fast(noescape.Pointer(unsafe.Pointer(&buf)), noescape.Pointer(v), stackPayload-d.plan.FixedSize())
	} else {
		n, ok = d.plan.Encode(buf[:], v)
	}
	if !ok {
		d.emitLarge(v)
		return
	}
	d.point.Dispatch(noescape.Bytes(buf[:n]))
}

var largeBufs = sync.Pool{New: func() any { b := make([]byte, MaxPayload); return &b }}

func (d *definition) emitLarge(v unsafe.Pointer) {
	n := d.plan.Size(v)
	if n > MaxPayload {
		d.oversized.Add(1)
		return
	}
	bp := largeBufs.Get().(*[]byte)
	defer largeBufs.Put(bp)
	n, _ = d.plan.Encode(*bp, v)
	d.point.Dispatch((*bp)[:n])
}

// EmitTo fires the event for a statedump: the payload goes to the dump's
// tracer only, whether or not the event is enabled.
func (e Event[T]) EmitTo(d *tracer.Dump, v T) {
	n := e.d.plan.Size(unsafe.Pointer(&v))
	if n > MaxPayload {
		e.d.oversized.Add(1)
		return
	}
	buf := make([]byte, n)
	n, _ = e.d.plan.Encode(buf, unsafe.Pointer(&v))
	d.Emit(e.d.point, buf[:n])
}

// Attach attaches t to this event. Detach the returned attachment to stop.
func (e Event[T]) Attach(t Tracer) (*tracer.Attachment, error) { return e.d.point.Attach(t) }

// Desc returns the event's description. Do not modify it.
func (e Event[T]) Desc() *catalog.Event { return e.d.point.Desc() }

// Point returns the event's point in the process registry, for tracers.
func (e Event[T]) Point() *tracer.Point { return e.d.point }

// Oversized returns how many firings were dropped because their payload
// exceeded [MaxPayload].
func (e Event[T]) Oversized() uint64 { return e.d.oversized.Load() }
