// Command metrics shows an in-process tracer that is not a logger: it turns
// an event's field into a latency histogram, reading the payload in place
// (no allocation, no decoding into a struct). The same event could feed a
// user-space trace session and a kernel tracer at the same time.
//
//	go run ./examples/metrics
package main

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/usertrace/usertrace"
)

type QueryDone struct {
	Table string
	Rows  uint32
	Took  time.Duration
}

var queryDone = usertrace.NewEvent[QueryDone]("db", "query_done")

// histogram counts durations in power-of-two microsecond buckets.
type histogram struct {
	buckets [32]atomic.Uint64
}

// Trace implements usertrace.Tracer. It runs on the goroutine that fired the
// event, concurrently with other calls, and must not keep r.
func (h *histogram) Trace(r usertrace.Record) {
	took, ok := r.Field("took")
	if !ok {
		return
	}
	us := uint64(took.Duration() / time.Microsecond)
	h.buckets[bits.Len64(us)].Add(1)
}

func main() {
	h := &histogram{}
	a, err := queryDone.Attach(h)
	if err != nil {
		panic(err)
	}
	defer a.Detach()

	for range 10000 {
		// A query takes 50µs to 2ms, sometimes much longer.
		d := time.Duration(50+rand.IntN(1950)) * time.Microsecond
		if rand.IntN(100) == 0 {
			d *= 20
		}
		queryDone.Emit(QueryDone{Table: "orders", Rows: 1, Took: d})
	}

	fmt.Println("query latency (µs)   count")
	for i := range h.buckets {
		if n := h.buckets[i].Load(); n > 0 {
			lo := uint64(0)
			if i > 0 {
				lo = 1 << (i - 1)
			}
			fmt.Printf("[%6d, %6d)   %6d\n", lo, uint64(1)<<i, n)
		}
	}
}
