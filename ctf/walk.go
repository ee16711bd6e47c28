package ctf

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"

	"github.com/usertrace/usertrace/catalog"
)

// A Layout is the payload shapes of a table of event descriptions, compiled
// once for a [Walker]: each event's fields as runs of fixed-size fields
// (sized once, checked with one comparison), NUL-terminated strings, and
// the other fields, sized as [Events] sizes them.
type Layout struct {
	shapes []shape // by event id; nil segs with !ok: no such event
}

type shape struct {
	ok   bool
	segs []seg
}

const (
	segFixed   = iota // n bytes
	segString         // up to and including a NUL
	segGeneral        // typeSize of t at depth 0
)

type seg struct {
	kind int
	n    int
	t    *catalog.Type
}

// maxFixed bounds a run of fixed-size fields; larger ones are sized field
// by field (no overflow in the sums).
const maxFixed = 1 << 30

// NewLayout compiles the layout of events, indexed by session-local id
// (the slice given to [Events]; nil entries are ids no event has).
func NewLayout(events []*catalog.Event) *Layout {
	l := &Layout{shapes: make([]shape, len(events))}
	for id, e := range events {
		if e == nil {
			continue
		}
		sh := shape{ok: true}
		for i := range e.Fields {
			t := &e.Fields[i].Type
			if n, ok := staticSize(t, 0); ok {
				if k := len(sh.segs) - 1; k >= 0 && sh.segs[k].kind == segFixed && sh.segs[k].n+n <= maxFixed {
					sh.segs[k].n += n
				} else {
					sh.segs = append(sh.segs, seg{kind: segFixed, n: n})
				}
				continue
			}
			if t.Kind == catalog.String {
				sh.segs = append(sh.segs, seg{kind: segString})
				continue
			}
			sh.segs = append(sh.segs, seg{kind: segGeneral, t: t})
		}
		l.shapes[id] = sh
	}
	return l
}

// staticSize returns the size of every value of type t (at struct depth
// depth) when typeSize accepts a value of t exactly when that many bytes
// are left; false otherwise (then typeSize itself sizes it).
func staticSize(t *catalog.Type, depth int) (int, bool) {
	if depth > catalog.MaxDepth+1 {
		return 0, false
	}
	if n := t.Kind.Size(); n > 0 {
		return n, true
	}
	switch t.Kind {
	case catalog.Enum:
		if t.Elem == nil {
			return 0, false
		}
		return staticSize(t.Elem, depth+1)
	case catalog.Array:
		if t.Elem == nil || t.Len == 0 {
			return 0, false
		}
		n, ok := staticSize(t.Elem, depth+1)
		// n >= 1: Len elements of n bytes fit exactly when Len*n bytes
		// are left (typeSize's MaxArrayLen rule then never applies).
		if !ok || n == 0 || uint64(t.Len)*uint64(n) > maxFixed {
			return 0, false
		}
		return int(t.Len) * n, true
	case catalog.Struct:
		sum := 0
		for i := range t.Fields {
			n, ok := staticSize(&t.Fields[i].Type, depth+1)
			if !ok || sum+n > maxFixed {
				return 0, false
			}
			sum += n
		}
		if sum == 0 {
			return 0, false
		}
		return sum, true
	}
	return 0, false
}

// A Walker reads the events of a packet one at a time, pull-style, with
// the checks of [Events] and the same errors:
//
//	h, err := w.Reset(pkt, layout)
//	for w.Next() {
//		use(w.Event) // w.Event.Payload aliases pkt
//	}
//	if err := w.Err(); err != nil { ... } // the events before it were good
//
// The packet is treated as hostile; a Walker never panics.
type Walker struct {
	// Event is the current event, valid after Next returned true.
	Event

	pkt    []byte // up to content_size
	off    int
	last   uint64
	shapes []shape
	err    error
}

// Reset starts the walk of packet pkt with the event layout l, and returns
// its header. On error (a bad header) Next returns false at once.
func (w *Walker) Reset(pkt []byte, l *Layout) (PacketHeader, error) {
	w.shapes = l.shapes
	h, err := ParsePacketHeader(pkt)
	if err != nil {
		w.pkt, w.off, w.err = nil, 0, err
		return h, err
	}
	w.pkt = pkt[:h.ContentSize/8]
	w.off = PacketHeaderSize
	w.last = h.TimestampBegin
	w.err = nil
	return h, nil
}

// Err returns the error that ended the walk, or nil at the packet's end.
func (w *Walker) Err() error { return w.err }

// Next moves to the next event and reports whether there is one. It
// returns false at the end of the packet's content or at the first
// malformed event (see Err).
func (w *Walker) Next() bool {
	pkt, off := w.pkt, w.off
	end := len(pkt)
	if off >= end {
		return false
	}
	start := off
	if end-off < CompactHeaderSize {
		return w.fail(fmt.Errorf("%w: %d stray bytes at offset %d", ErrCorrupt, end-off, off))
	}
	hw := binary.LittleEndian.Uint32(pkt[off:])
	var id uint32
	var ts uint64
	if id = hw & 31; id != extendedID {
		low := uint64(hw >> 5)
		ts = w.last&^CompactTSMask | low
		if low < w.last&CompactTSMask {
			ts += 1 << CompactTSBits
		}
		off += CompactHeaderSize
	} else {
		if end-off < ExtendedHeaderSize {
			return w.fail(fmt.Errorf("%w: truncated extended header at offset %d", ErrCorrupt, off))
		}
		id = binary.LittleEndian.Uint32(pkt[off+1:])
		ts = binary.LittleEndian.Uint64(pkt[off+5:])
		off += ExtendedHeaderSize
	}
	if uint64(id) >= uint64(len(w.shapes)) || !w.shapes[id].ok {
		return w.fail(fmt.Errorf("%w: unknown event id %d at offset %d", ErrCorrupt, id, start))
	}
	if ts < w.last {
		return w.fail(fmt.Errorf("%w: time goes backwards at offset %d", ErrCorrupt, start))
	}
	next := off
	for i := range w.shapes[id].segs {
		sg := &w.shapes[id].segs[i]
		switch sg.kind {
		case segFixed:
			if end-next < sg.n {
				return w.overrun(id, start)
			}
			next += sg.n
		case segString:
			// Eight bytes at a time (SWAR: the lowest byte flagged by
			// (x-0x01..)&^x&0x80.. is the first zero; higher flags may
			// be false), then the IndexByte of the rest.
			j, k := next, -1
			for ; end-j >= 8 && j-next < 64; j += 8 {
				x := binary.LittleEndian.Uint64(pkt[j:])
				if z := (x - 0x0101010101010101) &^ x & 0x8080808080808080; z != 0 {
					k = bits.TrailingZeros64(z) / 8
					break
				}
			}
			if k < 0 { // the tail, or a long string: IndexByte's vector loop
				if k = bytes.IndexByte(pkt[j:end], 0); k < 0 {
					return w.overrun(id, start)
				}
			}
			next = j + k + 1
		default:
			n, ok := typeSize(sg.t, pkt, next, 0)
			if !ok {
				return w.overrun(id, start)
			}
			next = n
		}
	}
	w.last = ts
	w.ID, w.Timestamp, w.Offset = id, ts, start
	w.Payload = pkt[off:next:next]
	w.off = next
	return true
}

func (w *Walker) overrun(id uint32, at int) bool {
	return w.fail(fmt.Errorf("%w: payload of event id %d at offset %d overruns the packet", ErrCorrupt, id, at))
}

func (w *Walker) fail(err error) bool {
	w.err = err
	w.off = len(w.pkt)
	return false
}
