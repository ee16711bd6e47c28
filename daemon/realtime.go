package daemon

import (
	"log/slog"
	"runtime"
	"sync"
	"time"

	"github.com/usertrace/usertrace/internal/sched"
)

// Bounds on real-time draining (see realtime).
const (
	rtWindow = 100 * time.Millisecond
	rtBudget = 75 * time.Millisecond // of draining per rtWindow, per consumer
)

// rtGate is the daemon-wide part of real-time draining: how many consumers
// may be real-time at once, and the warning given once when none may.
type rtGate struct {
	slots chan struct{}
	warn  sync.Once
	log   *slog.Logger
	off   bool // Config.NoRealtime
}

func newRTGate(cfg Config, log *slog.Logger) *rtGate {
	return &rtGate{slots: make(chan struct{}, max(1, runtime.NumCPU()/2)), log: log, off: cfg.NoRealtime}
}

// realtime is one consumer's real-time state: the consumer drains from a
// real-time thread while its ring is filling fast, within two bounds:
//   - at most half the CPUs' worth of consumers (at least one) are
//     real-time at once, daemon-wide (rtGate.slots);
//   - a consumer spends at most rtBudget of every rtWindow draining while
//     real-time; past that it drains at normal priority until the window
//     ends.
//
// A legitimate full-speed burst takes ~40 % of a core here. The bounds are
// for hostile apps: one that marks sub-buffers committed without writing
// them pays an atomic add for every 256 KiB the consumer copies, and could
// otherwise keep real-time threads copying without end. The consumer looks
// at no more than a ring's worth of packets per look, so the budget is
// enforced to within one look (a few ms).
//
// A realtime is used by its consumer goroutine only; every method must be
// called from that goroutine (the thread is locked to it).
type realtime struct {
	gate   *rtGate
	rt     *sched.Realtime
	stuck  bool      // LockRealtime failed, or Unlock did (then rt stays)
	window time.Time // start of the current window
	spent  time.Duration
	paused bool // budget spent: normal priority until the window ends
}

// active reports whether the consumer is real-time now.
func (r *realtime) active() bool { return r.rt != nil }

// update is called after each look at the ring: fast says whether the ring
// has been filling fast recently, took how long the look took.
func (r *realtime) update(fast bool, took time.Duration, now time.Time) {
	if now.Sub(r.window) >= rtWindow {
		r.window, r.spent, r.paused = now, 0, false
	}
	if r.rt != nil {
		r.spent += took
		if r.spent > rtBudget {
			r.paused = true
			r.gate.log.Debug("real-time draining budget spent for this window", "spent", r.spent, "window", rtWindow)
		}
	}
	want := fast && !r.paused
	switch {
	case r.stuck || r.gate.off:
	case want && r.rt == nil:
		r.enter()
	case !want && r.rt != nil:
		r.leave()
	}
}

func (r *realtime) enter() {
	select {
	case r.gate.slots <- struct{}{}:
	default:
		return // enough consumers are real-time already
	}
	rt, err := sched.LockRealtime()
	if err != nil {
		<-r.gate.slots
		r.stuck = true
		r.gate.warn.Do(func() {
			r.gate.log.Warn("consumers drain at normal priority; rings may overflow while programs keep every CPU busy", "err", err)
		})
		return
	}
	r.rt = rt
}

func (r *realtime) leave() {
	if err := r.rt.Unlock(); err != nil {
		// The goroutine stays locked to its thread, which ends with it:
		// go on at real-time priority, holding the slot.
		r.gate.log.Warn("leaving real-time draining", "err", err)
		r.stuck = true
		return
	}
	r.rt = nil
	<-r.gate.slots
}

// release leaves the real-time class for good (the consumer is ending).
func (r *realtime) release() {
	if r.rt != nil {
		if r.rt.Unlock() == nil {
			r.rt = nil
		}
		<-r.gate.slots
	}
}
