package tracedir

import (
	"runtime"
	"sync"
)

// Reading and formatting overlap in WriteJSON: with a second P, one
// goroutine merges the streams and copies events into batches while the
// caller's goroutine formats the previous batch. WriteText no longer uses
// it: since ctf.Walker, reading is about a third of WriteText's ~80 ns
// per event, less than the copy of each event into a batch costs, and on
// the shared 2-vCPU development machine the pipeline measured slower by
// wall clock as well as by CPU time (8.3 against 10.5 M events/s,
// 2026-11-25).

// batchEvents and batchBytes bound a batch: large enough that the channel
// handoff is lost in the noise, small enough to stay in cache.
const (
	batchEvents = 2048
	batchBytes  = 128 << 10
	numBatches  = 4
)

type batch struct {
	events []Event
	offs   []int // payload offsets in arena
	arena  []byte
}

// each calls fn for every item of r, in order, and stops at fn's first
// error. Items handed to fn are copies (payload included) valid during the
// call.
func each(r *Reader, fn func(*Event) error) error {
	if runtime.GOMAXPROCS(0) < 2 {
		for r.Next() {
			if err := fn(r.Event()); err != nil {
				return err
			}
		}
		return nil
	}
	full := make(chan *batch, numBatches)
	free := make(chan *batch, numBatches)
	for range numBatches {
		free <- &batch{events: make([]Event, 0, batchEvents), offs: make([]int, 0, batchEvents), arena: make([]byte, 0, batchBytes)}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the reader: owns r until wg.Wait returns
		defer wg.Done()
		defer close(full)
		for {
			var b *batch
			select {
			case b = <-free:
			case <-stop:
				return
			}
			b.events, b.offs, b.arena = b.events[:0], b.offs[:0], b.arena[:0]
			more := true
			for len(b.events) < batchEvents && len(b.arena) < batchBytes {
				if more = r.Next(); !more {
					break
				}
				e := r.Event()
				b.offs = append(b.offs, len(b.arena))
				b.arena = append(b.arena, e.Payload...)
				b.events = append(b.events, *e)
			}
			// The arena may have moved while it grew: point the payloads
			// into it now that it is final.
			for i := range b.events {
				e := &b.events[i]
				e.Payload = b.arena[b.offs[i] : b.offs[i]+len(e.Payload) : b.offs[i]+len(e.Payload)]
			}
			if len(b.events) > 0 {
				full <- b
			}
			if !more {
				return
			}
		}
	}()
	var err error
	for b := range full {
		if err == nil {
			for i := range b.events {
				if err = fn(&b.events[i]); err != nil {
					close(stop)
					break
				}
			}
		}
		select {
		case free <- b:
		default:
		}
	}
	wg.Wait()
	return err
}
