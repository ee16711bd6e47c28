// Package ust is the user-space tracer of usertrace: it writes each fired
// event into a shared-memory ring (package ring) that another process drains,
// with no system call, no lock and no allocation per event.
//
// A [Tracer] owns one ring (one per session). Attach it to points with
// [Tracer.Attach] (or let it subscribe to the whole catalog with
// [Tracer.AttachAll]); each attached event gets a session-local id, in order
// of attachment, so that the ids of a session stay small and fit the 4-byte
// compact event header (ids 0-30; later ones take the 13-byte extended
// header). [Tracer.Metadata] describes the session's events in CTF 1.8 TSDL.
//
// # Invariants
//
//  1. A record is written while the goroutine is pinned to its P
//     (runtime.procPin), into the shard P mod NumShards. A pinned goroutine
//     is not preempted, so a shard is written by one goroutine at a time
//     unless two Ps share it; such a shard is marked [ring.ShardShared]
//     before the second P writes. Otherwise crash recovery could keep a
//     half-written record. P p < NumShards owns shard p and writes it
//     with [ring.Writer.WriteOwned] (unordered clock, clamped); any other
//     P writes with [ring.Writer.Write] (ordered clock). Otherwise two
//     unordered writers could publish timestamps out of order.
//  2. Trace checks the closed flag after pinning; Close sets it, then stops
//     the world once (a pinned goroutine holds off a stop-the-world), then
//     unmaps. Otherwise a Trace that loaded the sink list before Close could
//     write into unmapped memory.
//  3. Session ids are handed out under mu and never reused within a
//     session. Otherwise the metadata would name the wrong events.
//
// Lock order: mu is a leaf (tracer.Point locks are taken inside Attach
// while mu is held; tracer never calls back into ust under its locks).
package ust

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/internal/rt"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/tracer"
)

// Config configures a Tracer. The zero value is usable.
type Config struct {
	// Ring is the shape of the ring. NumShards 0 means
	// max(runtime.NumCPU(), GOMAXPROCS) at creation; if GOMAXPROCS grows
	// past it later, Ps share shards (still correct, see invariant 1).
	Ring ring.Config
}

// Tracer is the user-space tracer. It implements [tracer.Tracer].
type Tracer struct {
	w       *ring.Writer
	nshards int
	closed  atomic.Bool

	mu     sync.Mutex
	events []*catalog.Event         // index = session id; guarded by mu
	byProc atomic.Pointer[[]uint32] // process event id -> session id + 1 (copy-on-write under mu)
	atts   []*tracer.Attachment     // guarded by mu
	sub    *tracer.Subscription     // guarded by mu
	bound  map[*catalog.Event]*sink // guarded by mu
}

// New creates a tracer and its ring.
func New(cfg Config) (*Tracer, error) {
	rc := cfg.Ring
	if rc.NumShards == 0 {
		rc.NumShards = max(runtime.NumCPU(), runtime.GOMAXPROCS(0))
	}
	w, err := ring.Create(rc)
	if err != nil {
		return nil, fmt.Errorf("new user-space tracer: %w", err)
	}
	return &Tracer{w: w, nshards: rc.NumShards, bound: make(map[*catalog.Event]*sink)}, nil
}

// Ring returns the tracer's ring, whose memfd is handed to a consumer.
func (t *Tracer) Ring() *ring.Writer { return t.w }

// sink is one event bound to its session id: what Attach attaches, so that
// the hot path needs no lookup.
type sink struct {
	t  *Tracer
	id uint32
}

// Trace writes the record into the ring. It is [Tracer.write] spelled out,
// to save a call on the hot path.
func (s *sink) Trace(r catalog.Record) {
	t := s.t
	p := rt.ProcPin()
	if t.closed.Load() { // after pinning: invariant 2
		rt.ProcUnpin()
		return
	}
	if p < t.nshards {
		t.w.WriteOwned(p, s.id, r.Payload) // P p owns shard p: invariant 1
	} else {
		t.sharedWrite(p, s.id, r.Payload)
	}
	rt.ProcUnpin()
}

// Trace writes a record of any event this tracer knows (attached through
// [Tracer.Attach] or [Tracer.Register]); records of other events are
// ignored. Attachments made by Attach do not go through here.
func (t *Tracer) Trace(r catalog.Record) {
	if r.Event == nil {
		return
	}
	m := t.byProc.Load()
	if m == nil || uint64(r.Event.ID) >= uint64(len(*m)) {
		return
	}
	if id := (*m)[r.Event.ID]; id != 0 {
		t.write(id-1, r.Payload)
	}
}

// write is the hot path: pin, write into this P's shard, unpin. Keep it in
// step with sink.Trace.
func (t *Tracer) write(id uint32, payload []byte) {
	p := rt.ProcPin()
	if t.closed.Load() { // after pinning: invariant 2
		rt.ProcUnpin()
		return
	}
	if p < t.nshards {
		t.w.WriteOwned(p, id, payload) // P p owns shard p: invariant 1
	} else {
		t.sharedWrite(p, id, payload)
	}
	rt.ProcUnpin()
}

// sharedWrite writes from a P beyond the shard count, into a shard that
// P mod NumShards owns: marked shared first, written with the ordered
// clock (invariant 1).
func (t *Tracer) sharedWrite(p int, id uint32, payload []byte) {
	p %= t.nshards
	t.w.MarkShared(p)
	t.w.Write(p, id, payload)
}

// Register gives the event a session id without attaching (for use with
// [Tracer.Trace] from another dispatcher) and returns the id.
func (t *Tracer) Register(e *catalog.Event) (uint32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, err := t.bindLocked(e)
	if err != nil {
		return 0, err
	}
	return s.id, nil
}

func (t *Tracer) bindLocked(e *catalog.Event) (*sink, error) {
	if t.closed.Load() {
		return nil, ErrClosed
	}
	if s := t.bound[e]; s != nil {
		return s, nil
	}
	if e.Opaque {
		return nil, fmt.Errorf("bind %s: event has fields of unknown kinds", e.FullName())
	}
	s := &sink{t: t, id: uint32(len(t.events))}
	t.events = append(t.events, e)
	t.bound[e] = s
	var old []uint32
	if m := t.byProc.Load(); m != nil {
		old = *m
	}
	n := max(len(old), int(e.ID)+1)
	m := make([]uint32, n)
	copy(m, old)
	m[e.ID] = s.id + 1
	t.byProc.Store(&m)
	return s, nil
}

// ErrClosed is returned by methods called after Close.
var ErrClosed = errors.New("ust: tracer closed")

// Attach attaches the tracer to a point and returns the event's session id.
// Attaching the same point again adds another attachment with the same id.
func (t *Tracer) Attach(p *tracer.Point) (uint32, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s, err := t.bindLocked(p.Desc())
	if err != nil {
		return 0, err
	}
	a, err := p.Attach(s)
	if err != nil {
		return 0, err
	}
	t.atts = append(t.atts, a)
	return s.id, nil
}

// AttachAll attaches the tracer to every point for which match returns
// true, now and as points are defined, until Close.
func (t *Tracer) AttachAll(match func(*catalog.Event) bool) {
	sub := tracer.Subscribe(func(p *tracer.Point) {
		if match == nil || match(p.Desc()) {
			t.Attach(p) // an error here means closed or too many attachments: skip
		}
	})
	t.mu.Lock()
	t.sub = sub
	t.mu.Unlock()
}

// Events returns the session's events, indexed by session id.
func (t *Tracer) Events() []*catalog.Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*catalog.Event(nil), t.events...)
}

// Metadata returns the CTF 1.8 TSDL metadata of the session's events. Its
// clock is measured now (ring.Info.Clock): call it after the last event
// for the most exact mapping to wall time; ring.Info.LastClock returns the
// same clock for a sidecar.
func (t *Tracer) Metadata() (string, error) {
	return ctf.Metadata(ctf.Trace{UUID: t.w.UUID(), Clock: t.w.Info().Clock(), Events: t.Events()})
}

// Lost returns the number of records dropped, over all shards.
func (t *Tracer) Lost() uint64 {
	var n uint64
	for i := range t.nshards {
		n += t.w.Lost(i)
	}
	return n
}

// Flush closes the partly filled packets so that the reader can take them.
func (t *Tracer) Flush() { t.w.Flush() }

// Close detaches the tracer everywhere, flushes the ring and unmaps it. A
// reader holding the memfd keeps the data.
func (t *Tracer) Close() error {
	t.mu.Lock()
	if t.closed.Swap(true) {
		t.mu.Unlock()
		return nil
	}
	sub, atts := t.sub, t.atts
	t.sub, t.atts = nil, nil
	t.mu.Unlock()
	if sub != nil {
		sub.Cancel()
	}
	for _, a := range atts {
		a.Detach()
	}
	// Invariant 2: every write that pinned before closed was set ends
	// before this stop-the-world completes; later ones see closed.
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.w.Flush()
	return t.w.Close()
}
