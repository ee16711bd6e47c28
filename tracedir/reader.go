package tracedir

import (
	"errors"
	"time"

	"github.com/usertrace/usertrace/catalog"
)

// Event is one item read from a trace: an event, or a notice that the
// writer discarded events (Desc nil, Lost > 0).
//
// An Event lent by [Reader.Event] is valid until the next call of
// [Reader.Next]: its Payload aliases the reader's packet buffer.
type Event struct {
	Trace *Trace
	Shard int
	// Desc describes the event; nil for a lost-events notice.
	Desc *catalog.Event
	// ID is the event's session-local id (its index in Trace.Events).
	ID uint32
	// Timestamp is the trace clock's raw value (TSC ticks, or
	// CLOCK_MONOTONIC ns: see Trace.Clock). For a notice, the
	// timestamp_begin of the packet the lost events preceded.
	Timestamp uint64
	// Wall is Timestamp in ns since the Unix epoch (Trace.Clock.Wall, the
	// conversion babeltrace2 makes). Readers merge traces in Wall order.
	Wall int64
	// Payload is the event's payload (layout in package catalog).
	Payload []byte
	// Lost is, for a notice, how many events the writer discarded on this
	// shard between the previous packet and this one (the growth of the
	// packets' events_discarded).
	Lost uint64
}

// Record returns the event as a catalog record (its Payload is not copied).
func (e *Event) Record() catalog.Record { return catalog.Record{Event: e.Desc, Payload: e.Payload} }

// Time returns Wall as a time.Time.
func (e *Event) Time() time.Time { return time.Unix(0, e.Wall) }

// Stats are the figures of a read.
type Stats struct {
	Traces, Streams int
	Packets         uint64 // packets read whole or in part
	Events          uint64 // events yielded (written)
	Filtered        uint64 // events left out by the filter
	Lost            uint64 // events the writers discarded (sum of notices)
	// Corrupt counts the packets (or byte ranges) skipped, whole or in
	// part, because they were malformed; SkippedBytes the bytes passed over
	// looking for the next packet after a bad header.
	Corrupt      uint64
	SkippedBytes uint64
	// Errors are the first corruption errors met (a few per trace), each
	// naming the file and byte offset; each wraps ctf.ErrCorrupt.
	Errors []error
}

// Reader merges the events of one or more traces, over all their shards, in
// time order (Wall; ties go to the trace given first, then the lower
// shard). It reads each stream a packet at a time and keeps a small heap of
// per-stream cursors, so that memory stays at one packet per stream and no
// event allocates. A Reader is not safe for concurrent use.
//
//	r := tracedir.NewReader(traces...)
//	for r.Next() {
//		e := r.Event()
//		...
//	}
//	if err := r.Err(); err != nil { ... } // I/O error
//	st := r.Stats()                       // st.Corrupt, st.Errors: skipped data
//
// Corrupt data is never an error of the Reader: a malformed packet is
// skipped (its good events before the fault are kept), counted and
// described in [Reader.Stats], and reading goes on with the next packet.
type Reader struct {
	traces  []*Trace
	streams []*stream
	heap    []*stream // streams with a current item, ordered by (Wall, idx)
	last    *stream   // stream of the item lent by Event; advanced by Next
	started bool
	keep    func(*catalog.Event) bool
	stats   Stats
	ioErr   error
}

// NewReader returns a Reader over the traces, from their first packets.
// The traces must stay open while it is used, and not be given to another
// Reader.
func NewReader(traces ...*Trace) *Reader {
	r := &Reader{traces: traces}
	for _, t := range traces {
		for _, s := range t.streams {
			s.idx = len(r.streams)
			r.streams = append(r.streams, s)
		}
	}
	r.stats.Traces, r.stats.Streams = len(traces), len(r.streams)
	return r
}

// Filter makes the Reader yield only events whose description keep accepts
// (lost-events notices are always yielded). keep is called once per event
// description, before the first event. Call Filter before Next.
func (r *Reader) Filter(keep func(*catalog.Event) bool) { r.keep = keep }

func (r *Reader) start() {
	r.started = true
	if r.keep != nil {
		for _, t := range r.traces {
			m := make([]bool, len(t.Events))
			for i, e := range t.Events {
				m[i] = e != nil && r.keep(e)
			}
			for _, s := range t.streams {
				s.mask = m
			}
		}
	}
	for _, s := range r.streams {
		if s.advance() {
			r.heap = append(r.heap, s)
		}
	}
	for i := len(r.heap)/2 - 1; i >= 0; i-- {
		r.down(i)
	}
}

// Next moves to the next item and reports whether there is one. It returns
// false at the end of every stream, or at an I/O error (see Err).
func (r *Reader) Next() bool {
	if !r.started {
		r.start()
	} else if r.last != nil {
		r.pop()
	}
	for len(r.heap) > 0 {
		s := r.heap[0]
		if s.cur.Desc == nil { // a notice
			r.stats.Lost += s.cur.Lost
			r.last = s
			return true
		}
		if s.mask != nil && !s.mask[s.cur.ID] {
			r.stats.Filtered++
			r.pop()
			continue
		}
		r.stats.Events++
		r.last = s
		return true
	}
	r.last = nil
	for _, s := range r.streams {
		if s.ioErr != nil {
			r.ioErr = errors.Join(r.ioErr, s.ioErr)
			s.ioErr = nil
		}
	}
	return false
}

// pop advances the stream at the top of the heap and restores the order.
func (r *Reader) pop() {
	s := r.heap[0]
	if !s.advance() {
		n := len(r.heap) - 1
		r.heap[0] = r.heap[n]
		r.heap[n] = nil
		r.heap = r.heap[:n]
		if n == 0 {
			return
		}
	}
	r.down(0)
}

func less(a, b *stream) bool {
	return a.cur.Wall < b.cur.Wall || (a.cur.Wall == b.cur.Wall && a.idx < b.idx)
}

func (r *Reader) down(i int) {
	h := r.heap
	n := len(h)
	for {
		c := 2*i + 1
		if c >= n {
			return
		}
		if c+1 < n && less(h[c+1], h[c]) {
			c++
		}
		if !less(h[c], h[i]) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// Event returns the current item. It is valid until the next call of Next;
// do not modify it.
func (r *Reader) Event() *Event {
	if r.last == nil {
		return nil
	}
	return &r.last.cur
}

// Err returns the I/O errors that ended streams early, or nil. Corruption
// is not an error: see Stats.
func (r *Reader) Err() error { return r.ioErr }

// Stats returns the figures so far.
func (r *Reader) Stats() Stats {
	st := r.stats
	st.Packets, st.Corrupt, st.SkippedBytes, st.Errors = 0, 0, 0, nil
	for _, s := range r.streams {
		st.Packets += s.packets
	}
	for _, t := range r.traces {
		st.Corrupt += t.errs.corrupt
		st.SkippedBytes += t.errs.skipped
		st.Errors = append(st.Errors, t.errs.errs...)
	}
	return st
}
