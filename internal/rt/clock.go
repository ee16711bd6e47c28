package rt

import (
	"math/bits"
	"sync"
	"time"
)

// Stamp is one instant read on three clocks.
type Stamp struct {
	Ticks uint64 // the TSC or CLOCK_MONOTONIC ns, as asked of [Now]
	Mono  int64  // CLOCK_MONOTONIC, ns
	Wall  int64  // CLOCK_REALTIME, ns since the Unix epoch
}

// Now reads the three clocks back to back, five times, and keeps the
// tightest try: Ticks and Mono are the midpoints of reads on both sides of
// the wall-clock read. With tsc, Ticks is the TSC (ordered reads; tsc must
// only be asked where [TSC] works), else CLOCK_MONOTONIC.
func Now(tsc bool) Stamp {
	var best Stamp
	width := uint64(1<<64 - 1)
	for range 5 {
		var t1, t2 uint64
		if tsc {
			t1, _ = TSC()
		}
		m1 := Nanotime()
		wall := time.Now().UnixNano()
		m2 := Nanotime()
		if tsc {
			t2, _ = TSC()
		}
		w := uint64(m2 - m1)
		if tsc {
			w = t2 - t1
		}
		if w < width {
			width = w
			best = Stamp{Ticks: t1 + (t2-t1)/2, Mono: m1 + (m2-m1)/2, Wall: wall}
			if !tsc {
				best.Ticks = uint64(best.Mono)
			}
		}
	}
	return best
}

// Rate returns the ticks per second of the clock behind a.Ticks and
// b.Ticks, measured against CLOCK_MONOTONIC between the two stamps, rounded;
// 0 if b is not after a.
func Rate(a, b Stamp) uint64 {
	if b.Ticks <= a.Ticks || b.Mono <= a.Mono {
		return 0
	}
	return MulDiv(b.Ticks-a.Ticks, 1e9, uint64(b.Mono-a.Mono))
}

// MulDiv returns x*y/z rounded to nearest, in 128 bits; 0 if z is 0 or
// the result does not fit 64 bits.
func MulDiv(x, y, z uint64) uint64 {
	hi, lo := bits.Mul64(x, y)
	lo, c := bits.Add64(lo, z/2, 0)
	hi += c
	if z == 0 || hi >= z {
		return 0
	}
	q, _ := bits.Div64(hi, lo, z)
	return q
}

// calibrationTime is how long the first [TicksPerSecond] measures: its
// error is about 40 ns of read jitter over this, a few parts per million.
const calibrationTime = 10 * time.Millisecond

var calib struct {
	once sync.Once
	mu   sync.Mutex
	base Stamp
	freq uint64
}

// TicksPerSecond returns the rate of [Ticks]: 1e9 unless it reads the TSC.
// The TSC's rate is measured against CLOCK_MONOTONIC: the first call
// (once per process) sleeps calibrationTime for that; later calls measure
// from the first call's stamp to now once a second has passed, so the
// estimate only gets better (its error is the stamps' jitter over the
// whole baseline).
func TicksPerSecond() uint64 {
	if !TicksAreTSC() {
		return 1e9
	}
	calib.once.Do(func() {
		calib.base = Now(true)
		time.Sleep(calibrationTime)
		calib.freq = Rate(calib.base, Now(true))
	})
	calib.mu.Lock()
	defer calib.mu.Unlock()
	if now := Now(true); now.Mono-calib.base.Mono >= int64(time.Second) {
		if f := Rate(calib.base, now); f != 0 {
			calib.freq = f
		}
	}
	return calib.freq
}
