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
