package ring

import (
	"sync"

	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/internal/rt"
)

// Info is what a reader learns from the ring header.
type Info struct {
	Geometry
	UUID [16]byte
	// ClockOffset is wall-clock minus CLOCK_MONOTONIC, in ns, at creation.
	ClockOffset int64
	// The timestamp clock. TSC: timestamps are x86 TSC ticks; else
	// CLOCK_MONOTONIC ns. At creation the clock read CreatedTicks,
	// CLOCK_MONOTONIC CreatedMono and the wall clock
	// CreatedMono+ClockOffset. TicksPerSecond is the writer's measure of
	// the clock's rate (1e9 for ns). Use [Info.Clock] to map timestamps to
	// wall time.
	TSC            bool
	CreatedTicks   uint64
	CreatedMono    int64
	TicksPerSecond uint64

	clock *clockCache // shared by the copies of one ring's Info
}

// clockCache remembers the last mapping Clock computed, so that the files
// written from one measurement agree (see [Info.LastClock]).
type clockCache struct {
	mu   sync.Mutex
	last ctf.Clock
	ok   bool
}

func infoOf(h *header, c *clockCache) Info {
	return Info{
		Geometry: h.Geometry, UUID: h.uuid, ClockOffset: h.clockOffset,
		TSC: h.tsc, CreatedTicks: h.createdTicks, CreatedMono: h.created, TicksPerSecond: h.tickFreq,
		clock: c,
	}
}

// minBaseline is the shortest time since creation over which Clock
// measures the TSC's rate itself rather than trusting the writer's.
const minBaseline = 1 // second

// maxRateError is how far (1/maxRateError, here 0.1 %: twice the
// kernel's largest NTP slew) a measured rate may stray from the writer's
// before Clock distrusts the measurement (a clock stepped, or a reader in
// another time namespace).
const maxRateError = 1000

// Clock returns the mapping of the ring's timestamps to wall-clock time,
// measured now, and remembers it for [Info.LastClock].
//
// For ns timestamps it is exact: wall = timestamp + ClockOffset. For TSC
// ticks it is the line through the creation stamp (ticks, wall) whose slope
// is the TSC's rate over the whole life of the ring: the ticks elapsed
// since creation over the CLOCK_MONOTONIC ns elapsed, both read now. Call
// it after the last event (the daemon does, when the ring is done): every
// event then lies between the two stamps, and its wall time is off by no
// more than the stamps' read jitter (tens of ns) plus any NTP slew change
// within the session. Less than a second after creation, or when that
// measure strays from the writer's by more than 0.1 % (a reader in another
// time namespace sees another CLOCK_MONOTONIC; then the wall clock is
// tried), the writer's own measure of the rate is used.
func (i Info) Clock() ctf.Clock {
	c := i.clockNow()
	if i.clock != nil {
		i.clock.mu.Lock()
		i.clock.last, i.clock.ok = c, true
		i.clock.mu.Unlock()
	}
	return c
}

// LastClock returns the mapping the last [Info.Clock] call on this ring's
// Info returned (or, if none, measures one now), so that a metadata file
// and a sidecar written one after the other agree to the tick.
func (i Info) LastClock() ctf.Clock {
	if i.clock != nil {
		i.clock.mu.Lock()
		c, ok := i.clock.last, i.clock.ok
		i.clock.mu.Unlock()
		if ok {
			return c
		}
	}
	return i.Clock()
}

func (i Info) clockNow() ctf.Clock {
	if !i.TSC {
		return ctf.NSClock(i.ClockOffset)
	}
	if _, ok := rt.TSC(); !ok {
		return ctf.NewClock(i.TicksPerSecond, i.CreatedTicks, i.CreatedMono+i.ClockOffset, true)
	}
	return i.clockAt(rt.Now(true))
}

// clockAt is Clock with now read.
func (i Info) clockAt(now rt.Stamp) ctf.Clock {
	f := i.TicksPerSecond
	wall0 := i.CreatedMono + i.ClockOffset
	if now.Ticks > i.CreatedTicks && f != 0 {
		dt := now.Ticks - i.CreatedTicks
		if dt/f >= minBaseline {
			for _, d := range [2]int64{now.Mono - i.CreatedMono, now.Wall - wall0} {
				if d <= 0 {
					continue
				}
				g := rt.MulDiv(dt, 1e9, uint64(d))
				if g > f-f/maxRateError && g < f+f/maxRateError {
					f = g
					break
				}
			}
		}
	}
	return ctf.NewClock(f, i.CreatedTicks, wall0, true)
}

// now returns the ring's clock now, as the reader reads it: the TSC or
// CLOCK_MONOTONIC as the header says (a reader without a TSC converts
// CLOCK_MONOTONIC through the creation stamp).
func (h *header) now() uint64 {
	if !h.tsc {
		return uint64(rt.Nanotime())
	}
	if t, ok := rt.TSC(); ok {
		return t
	}
	return h.createdTicks + rt.MulDiv(uint64(max(rt.Nanotime()-h.created, 0)), h.tickFreq, 1e9)
}
