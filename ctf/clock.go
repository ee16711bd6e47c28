package ctf

// Clock is the trace clock of the metadata: it maps a timestamp v (in
// ticks) to wall-clock time the way CTF 1.8 does,
//
//	OffsetS seconds + (Offset + v) / Freq seconds after the Unix epoch.
//
// Timestamps are TSC ticks on amd64 (docs/ring-abi.md, "Clock"), else
// CLOCK_MONOTONIC ns (Freq 1e9).
type Clock struct {
	Freq    uint64 // ticks per second; 0 is read as 1e9
	OffsetS int64  // seconds
	Offset  uint64 // ticks; [NewClock] keeps it below Freq
	// TSC says the ticks are the x86 time-stamp counter (only the
	// description in the metadata depends on it).
	TSC bool
}

// NSClock returns the clock of nanosecond timestamps (CLOCK_MONOTONIC) at
// offsetNS from wall-clock time: wall = v + offsetNS.
func NSClock(offsetNS int64) Clock {
	s, ns := offsetNS/1e9, offsetNS%1e9
	if ns < 0 {
		s, ns = s-1, ns+1e9
	}
	return Clock{Freq: 1e9, OffsetS: s, Offset: uint64(ns)}
}

// NewClock returns the clock of freq ticks per second whose tick count
// ticks was at wallNS (ns since the epoch). Offset is rounded to the
// nearest tick and kept in [0, freq); OffsetS is negative only if ticks
// counts from before the epoch.
func NewClock(freq, ticks uint64, wallNS int64, tsc bool) Clock {
	if freq == 0 {
		freq = 1e9
	}
	ws, wns := wallNS/1e9, wallNS%1e9
	if wns < 0 {
		ws, wns = ws-1, wns+1e9
	}
	// offset (s, cycles) = wall - ticks/freq
	s := ws - int64(ticks/freq)
	c := int64(mulDivRound(uint64(wns), freq, 1e9)) - int64(ticks%freq)
	for c < 0 {
		c += int64(freq)
		s--
	}
	for uint64(c) >= freq {
		c -= int64(freq)
		s++
	}
	return Clock{Freq: freq, OffsetS: s, Offset: uint64(c), TSC: tsc}
}

// Wall returns the wall-clock time of timestamp v in ns since the epoch,
// computed exactly as babeltrace2 does (bt_util_ns_from_origin: OffsetS in
// ns, plus Offset and v each converted to ns through a double and
// truncated), so that views of a trace print the times babeltrace2 prints.
// Hostile values wrap; Wall never panics.
func (c Clock) Wall(v uint64) int64 {
	f := c.Freq
	if f == 0 {
		f = 1e9
	}
	return c.OffsetS*1e9 + int64(nsFromValue(f, c.Offset)) + int64(nsFromValue(f, v))
}

// nsFromValue is babeltrace2's bt_util_ns_from_value.
func nsFromValue(f, v uint64) uint64 {
	if f == 1e9 {
		return v
	}
	d := 1e9 * float64(v) / float64(f)
	if d >= 1<<64 {
		return 1<<64 - 1
	}
	return uint64(d)
}

// mulDivRound returns x*y/z rounded, for x*y < 2^64.
func mulDivRound(x, y, z uint64) uint64 {
	if y != 0 && x > (1<<64-1)/y {
		// Not for the values NewClock passes (x < 1e9, y < ~1.8e10).
		return uint64(float64(x) * float64(y) / float64(z))
	}
	return (x*y + z/2) / z
}
