package rt

import (
	"runtime"
	"testing"
	"time"
)

func TestNanotimeIsMonotonic(t *testing.T) {
	a := Nanotime()
	time.Sleep(2 * time.Millisecond)
	b := Nanotime()
	if d := b - a; d < int64(2*time.Millisecond) || d > int64(2*time.Second) {
		t.Fatalf("Nanotime advanced %d ns across a 2 ms sleep", d)
	}
}

func TestProcPin(t *testing.T) {
	p := ProcPin()
	ProcUnpin()
	if p < 0 || p >= runtime.GOMAXPROCS(0) {
		t.Fatalf("ProcPin returned P %d, GOMAXPROCS is %d", p, runtime.GOMAXPROCS(0))
	}
}

func BenchmarkNanotime(b *testing.B) {
	var s int64
	for b.Loop() {
		s += Nanotime()
	}
	_ = s
}

func BenchmarkPin(b *testing.B) {
	for b.Loop() {
		ProcPin()
		ProcUnpin()
	}
}

func TestTicks(t *testing.T) {
	a := Ticks()
	time.Sleep(2 * time.Millisecond)
	b := TicksOrdered()
	f := TicksPerSecond()
	if d := b - a; b < a || d < f/1000 || d > 2*f {
		t.Fatalf("Ticks advanced %d across a 2 ms sleep at %d ticks/s", d, f)
	}
	if !TicksAreTSC() && f != 1e9 {
		t.Fatalf("ns ticks at %d per second", f)
	}
	t.Logf("TSC: %v, %d ticks per second", TicksAreTSC(), f)
}

// TestTicksPerSecond checks the calibration against a measure over 300 ms.
func TestTicksPerSecond(t *testing.T) {
	if !TicksAreTSC() {
		t.Skip("ticks are ns")
	}
	f := TicksPerSecond()
	a := Now(true)
	time.Sleep(300 * time.Millisecond)
	g := Rate(a, Now(true))
	if diff := int64(f) - int64(g); diff > int64(g/10000) || diff < -int64(g/10000) {
		t.Fatalf("calibrated %d ticks/s, measured %d over 300 ms", f, g)
	}
	t.Logf("calibrated %d, measured %d ticks/s", f, g)
}

func TestNow(t *testing.T) {
	s := Now(TicksAreTSC())
	w := time.Now().UnixNano()
	if d := w - s.Wall; d < 0 || d > int64(time.Second) {
		t.Fatalf("stamp wall %d, now %d", s.Wall, w)
	}
	if m := Nanotime(); m < s.Mono || m-s.Mono > int64(time.Second) {
		t.Fatalf("stamp mono %d, now %d", s.Mono, m)
	}
	if !TicksAreTSC() && s.Ticks != uint64(s.Mono) {
		t.Fatalf("ns stamp: ticks %d, mono %d", s.Ticks, s.Mono)
	}
}

func TestMulDiv(t *testing.T) {
	for _, c := range []struct{ x, y, z, want uint64 }{
		{10, 1e9, 3, 3333333333},
		{1 << 62, 1e9, 1 << 40, (1 << 22) * 1e9},
		{5, 1, 2, 3}, // rounds half up
		{1, 1, 0, 0},
		{1 << 63, 4, 1, 0}, // does not fit
	} {
		if got := MulDiv(c.x, c.y, c.z); got != c.want {
			t.Errorf("MulDiv(%d, %d, %d) = %d, want %d", c.x, c.y, c.z, got, c.want)
		}
	}
}

func BenchmarkTicks(b *testing.B) {
	var s uint64
	for b.Loop() {
		s += Ticks()
	}
	_ = s
}

func BenchmarkTicksOrdered(b *testing.B) {
	var s uint64
	for b.Loop() {
		s += TicksOrdered()
	}
	_ = s
}
