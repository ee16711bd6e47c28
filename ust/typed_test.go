package ust_test

import (
	"testing"

	"github.com/usertrace/usertrace"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/ust"
)

// Three is the benchmark event as a user defines it.
type Three struct {
	A uint64
	B uint32
	S string
}

var three = usertrace.NewEvent[Three]("bench", "three_typed")

// BenchmarkEmitRingTyped is BenchmarkEmitRing through the root package's
// typed API (usertrace.NewEvent), as user code would emit.
func BenchmarkEmitRingTyped(b *testing.B) {
	tr, err := ust.New(ust.Config{Ring: ring.Config{Overwrite: true}})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Attach(three.Point()); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		three.Emit(Three{A: i, B: uint32(i), S: "0123456789abcdef"})
		i++
	}
}

func TestEmitTypedZeroAllocs(t *testing.T) {
	tr, err := ust.New(ust.Config{Ring: ring.Config{Overwrite: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.Attach(three.Point()); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(10000, func() { three.Emit(Three{A: 1, B: 2, S: "0123456789abcdef"}) }); n != 0 {
		t.Fatalf("%v allocations per event, want 0", n)
	}
}
