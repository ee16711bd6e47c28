// Package tracer is the in-process side of usertrace that sits between call
// sites and tracers: the registry of every event point in the process, the
// per-event list of attached tracers, catalog subscriptions and statedumps.
//
// A call site never talks to a tracer directly. It tests its enable word and,
// when that is non-zero, hands the encoded payload to [Point.Dispatch], which
// calls each attached [Tracer] in turn. Tracers of every technology (in-process
// callbacks, the user-space ring, kernel tracers) attach the same way.
//
// # Invariants
//
//  1. A point's sink list is immutable once published; writers build a new
//     one under Point.mu and swap it in atomically (copy-on-write). Otherwise
//     a writer racing with another loses an attachment, the bug of libside's
//     C implementation.
//  2. Attach publishes the sink before it counts itself in the enable word;
//     Detach uncounts before it unpublishes. Otherwise an event fired just
//     after Attach returns could miss the new tracer.
//  3. Subscribers are told of each point exactly once: replayed points are
//     those with an id below the subscriber's start mark, later ones are
//     delivered by Register. Otherwise a point defined during Subscribe is
//     seen twice or never.
//
// Lock order: subMu before reg.mu; Point.mu is a leaf.
package tracer

import (
	"fmt"
	"reflect"
	"sync"
	"sync/atomic"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/enable"
)

// Tracer receives fired events.
//
// Trace is called synchronously on the goroutine that fired the event, for
// every event fired while the tracer is attached, possibly from many
// goroutines at once: it must be safe for concurrent use. It must not block
// for long, and must not keep r or r.Payload after it returns (clone them).
// The event's arguments are evaluated only when at least one tracer is
// attached (or a kernel tracer enabled the event).
type Tracer interface {
	Trace(r catalog.Record)
}

// Func adapts a function to the Tracer interface.
type Func func(r catalog.Record)

// Trace calls f(r).
func (f Func) Trace(r catalog.Record) { f(r) }

// Point is one event of the process: its enable word, its description and the
// tracers attached to it.
type Point struct {
	id    enable.ID
	word  enable.Word
	desc  *catalog.Event
	sinks atomic.Pointer[[]sink] // see invariant 1

	mu sync.Mutex // serializes writers of sinks
}

type sink struct {
	t    Tracer
	fn   Func   // t itself when t is a Func: called directly, one indirection less
	mask uint32 // called when word&mask != 0
	a    *Attachment
}

// ID returns the point's id, shared by its enable word and its description.
func (p *Point) ID() enable.ID { return p.id }

// Word returns the point's enable word.
func (p *Point) Word() enable.Word { return p.word }

// Desc returns the point's description. Do not modify it.
func (p *Point) Desc() *catalog.Event { return p.desc }

// Enabled reports whether anything wants the event.
func (p *Point) Enabled() bool { return p.word.Enabled() }

// Dispatch hands an encoded payload to every tracer that wants it. The
// payload may live on the caller's stack: tracers must not keep it.
func (p *Point) Dispatch(payload []byte) {
	l := p.sinks.Load()
	if l == nil {
		return
	}
	w := p.word.Load()
	r := catalog.Record{Event: p.desc, Payload: payload}
	for i := range *l {
		s := &(*l)[i]
		if w&s.mask == 0 {
			continue
		}
		if s.fn != nil {
			s.fn(r)
		} else {
			s.t.Trace(r)
		}
	}
}

// Attachment is one tracer attached to one point. Detach it exactly once.
type Attachment struct {
	p       *Point
	counted bool
	done    atomic.Bool
}

// Attach attaches t to the point and enables the event. The same tracer may
// be attached more than once; each attachment is separate.
func (p *Point) Attach(t Tracer) (*Attachment, error) {
	if t == nil {
		return nil, fmt.Errorf("attach to %s: nil tracer", p.desc.FullName())
	}
	a := &Attachment{p: p, counted: true}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.publish(sink{t: t, mask: enable.CountMask, a: a})
	if err := p.word.Attach(); err != nil {
		p.unpublish(a)
		return nil, fmt.Errorf("attach to %s: %w", p.desc.FullName(), err)
	}
	return a, nil
}

// AttachGated attaches t so that it is called only while some bit of mask is
// set in the enable word, without counting as an attachment: the tracer that
// owns those bits (a kernel tracer owns [enable.KernelBit]) decides when the
// event fires for it.
func (p *Point) AttachGated(t Tracer, mask uint32) (*Attachment, error) {
	if t == nil {
		return nil, fmt.Errorf("attach to %s: nil tracer", p.desc.FullName())
	}
	if mask == 0 || mask&enable.CountMask != 0 {
		return nil, fmt.Errorf("attach to %s: gate mask %#x must select only agent or kernel bits", p.desc.FullName(), mask)
	}
	a := &Attachment{p: p}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.publish(sink{t: t, mask: mask, a: a})
	return a, nil
}

// Detach removes the attachment. Events fired after Detach returns do not
// reach the tracer; calling Detach again does nothing.
func (a *Attachment) Detach() {
	if a.done.Swap(true) {
		return
	}
	p := a.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if a.counted {
		p.word.Detach() // invariant 2: uncount first
	}
	p.unpublish(a)
}

// publish appends s to a fresh copy of the sink list. p.mu is held.
func (p *Point) publish(s sink) {
	if f, ok := s.t.(Func); ok {
		s.fn = f
	}
	var old []sink
	if l := p.sinks.Load(); l != nil {
		old = *l
	}
	l := make([]sink, len(old), len(old)+1)
	copy(l, old)
	l = append(l, s)
	p.sinks.Store(&l)
}

// unpublish removes a's sink from a fresh copy of the list. p.mu is held.
func (p *Point) unpublish(a *Attachment) {
	old := *p.sinks.Load()
	l := make([]sink, 0, len(old))
	for _, s := range old {
		if s.a != a {
			l = append(l, s)
		}
	}
	if len(l) == 0 {
		p.sinks.Store(nil)
		return
	}
	p.sinks.Store(&l)
}

// Attached returns the number of attachments (gated ones included).
func (p *Point) Attached() int {
	if l := p.sinks.Load(); l != nil {
		return len(*l)
	}
	return 0
}

// The registry.
var reg struct {
	subMu sync.Mutex // serializes delivery to subscribers; before mu

	mu     sync.Mutex
	points []*Point // index = id
	byName map[string]*Point
	subs   []*Subscription
}

// Register adds an event to the process and returns its point. The
// description is validated and copied; its ID is assigned here. Registering
// the same provider:name again with the same level and fields returns the
// existing point; with a different level or fields it is an error.
func Register(desc catalog.Event) (*Point, error) {
	if err := desc.Validate(); err != nil {
		return nil, err
	}
	full := desc.FullName()
	reg.mu.Lock()
	if p, ok := reg.byName[full]; ok {
		reg.mu.Unlock()
		if p.desc.Level != desc.Level || !reflect.DeepEqual(p.desc.Fields, desc.Fields) {
			return nil, fmt.Errorf("define %s: already defined at %s:%d with a different level or fields; use one definition, or give this one another name",
				full, p.desc.File, p.desc.Line)
		}
		return p, nil
	}
	id, w := enable.New()
	if int(id) != len(reg.points) {
		// Every word is handed out here, so ids and registry stay in step.
		reg.mu.Unlock()
		panic("tracer: enable slab and registry out of step")
	}
	d := desc
	d.ID = uint32(id)
	p := &Point{id: id, word: w, desc: &d}
	reg.points = append(reg.points, p)
	if reg.byName == nil {
		reg.byName = make(map[string]*Point)
	}
	reg.byName[full] = p
	reg.mu.Unlock()

	reg.subMu.Lock()
	reg.mu.Lock()
	subs := append([]*Subscription(nil), reg.subs...)
	reg.mu.Unlock()
	for _, s := range subs {
		if uint32(id) >= s.start && !s.cancelled.Load() {
			s.fn(p)
		}
	}
	reg.subMu.Unlock()
	return p, nil
}

// Lookup returns the point with the given id.
func Lookup(id enable.ID) (*Point, bool) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if int(id) >= len(reg.points) {
		return nil, false
	}
	return reg.points[id], true
}

// LookupName returns the point named provider:name.
func LookupName(provider, name string) (*Point, bool) {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	p, ok := reg.byName[provider+":"+name]
	return p, ok
}

// Points returns every point of the process, in id order.
func Points() []*Point {
	reg.mu.Lock()
	defer reg.mu.Unlock()
	return append([]*Point(nil), reg.points...)
}

// Subscription is a tracer's standing interest in the catalog.
type Subscription struct {
	fn        func(*Point)
	start     uint32
	cancelled atomic.Bool
}

// Subscribe calls fn once for every point that exists now, then once for each
// point defined later, until the subscription is cancelled. Calls are
// serialized. fn may attach tracers but must not define events.
func Subscribe(fn func(*Point)) *Subscription {
	reg.subMu.Lock()
	defer reg.subMu.Unlock()
	reg.mu.Lock()
	existing := append([]*Point(nil), reg.points...)
	s := &Subscription{fn: fn, start: uint32(len(existing))}
	reg.subs = append(reg.subs, s)
	reg.mu.Unlock()
	for _, p := range existing {
		fn(p)
	}
	return s
}

// Cancel stops the subscription. No call to fn starts after Cancel returns.
func (s *Subscription) Cancel() {
	s.cancelled.Store(true)
	reg.subMu.Lock() // wait out a delivery in progress
	defer reg.subMu.Unlock()
	reg.mu.Lock()
	defer reg.mu.Unlock()
	for i, x := range reg.subs {
		if x == s {
			reg.subs = append(reg.subs[:i:i], reg.subs[i+1:]...)
			break
		}
	}
}
