package ctf

import (
	"encoding/binary"
	"fmt"

	"github.com/usertrace/usertrace/catalog"
)

// Event is one event read from a packet. Payload aliases the packet.
type Event struct {
	ID        uint32 // session-local event id
	Timestamp uint64 // full clock value, rebuilt from compact headers
	Offset    int    // of the event header within the packet
	Payload   []byte
}

// Events calls fn for each event of the packet pkt, in order, until fn
// returns false. events maps session-local ids to descriptions (the same
// slice given to [Metadata]). The packet is treated as hostile: every length
// is bounds-checked, and the first malformed event stops the walk with an
// error wrapping [ErrCorrupt]. Events never panics.
func Events(pkt []byte, events []*catalog.Event, fn func(Event) bool) error {
	h, err := ParsePacketHeader(pkt)
	if err != nil {
		return err
	}
	end := int(h.ContentSize / 8)
	last := h.TimestampBegin
	for off := PacketHeaderSize; off < end; {
		ev := Event{Offset: off}
		if end-off < CompactHeaderSize {
			return fmt.Errorf("%w: %d stray bytes at offset %d", ErrCorrupt, end-off, off)
		}
		w := binary.LittleEndian.Uint32(pkt[off:])
		if id := w & 31; id != extendedID {
			ev.ID = id
			low := uint64(w >> 5)
			// CTF 1.8 clock update: take the new low bits; if they went
			// backwards, the counter wrapped once.
			ts := last&^CompactTSMask | low
			if low < last&CompactTSMask {
				ts += 1 << CompactTSBits
			}
			ev.Timestamp = ts
			off += CompactHeaderSize
		} else {
			if end-off < ExtendedHeaderSize {
				return fmt.Errorf("%w: truncated extended header at offset %d", ErrCorrupt, off)
			}
			ev.ID = binary.LittleEndian.Uint32(pkt[off+1:])
			ev.Timestamp = binary.LittleEndian.Uint64(pkt[off+5:])
			off += ExtendedHeaderSize
		}
		if uint64(ev.ID) >= uint64(len(events)) || events[ev.ID] == nil {
			return fmt.Errorf("%w: unknown event id %d at offset %d", ErrCorrupt, ev.ID, ev.Offset)
		}
		if ev.Timestamp < last {
			return fmt.Errorf("%w: time goes backwards at offset %d", ErrCorrupt, ev.Offset)
		}
		last = ev.Timestamp
		next, ok := fieldsSize(events[ev.ID].Fields, pkt[:end], off, 0)
		if !ok {
			return fmt.Errorf("%w: payload of event id %d at offset %d overruns the packet", ErrCorrupt, ev.ID, ev.Offset)
		}
		ev.Payload = pkt[off:next:next]
		off = next
		if !fn(ev) {
			return nil
		}
	}
	return nil
}

// PayloadSize returns the length of the payload of an event with the given
// fields at the start of b, or false if b is too short or malformed.
func PayloadSize(fields []catalog.Field, b []byte) (int, bool) {
	return fieldsSize(fields, b, 0, 0)
}

func fieldsSize(fs []catalog.Field, b []byte, off, depth int) (int, bool) {
	for i := range fs {
		var ok bool
		if off, ok = typeSize(&fs[i].Type, b, off, depth); !ok {
			return 0, false
		}
	}
	return off, true
}

func typeSize(t *catalog.Type, b []byte, off, depth int) (int, bool) {
	if depth > catalog.MaxDepth+1 {
		return 0, false
	}
	if n := t.Kind.Size(); n > 0 {
		if len(b)-off < n {
			return 0, false
		}
		return off + n, true
	}
	switch t.Kind {
	case catalog.String:
		for i := off; i < len(b); i++ {
			if b[i] == 0 {
				return i + 1, true
			}
		}
		return 0, false
	case catalog.Bytes:
		if len(b)-off < 4 {
			return 0, false
		}
		n := uint64(binary.LittleEndian.Uint32(b[off:]))
		if n > uint64(len(b)-off-4) {
			return 0, false
		}
		return off + 4 + int(n), true
	case catalog.Enum:
		if t.Elem == nil {
			return 0, false
		}
		return typeSize(t.Elem, b, off, depth+1)
	case catalog.Array, catalog.Sequence:
		if t.Elem == nil {
			return 0, false
		}
		n := uint64(t.Len)
		if t.Kind == catalog.Sequence {
			if len(b)-off < 4 {
				return 0, false
			}
			n = uint64(binary.LittleEndian.Uint32(b[off:]))
			off += 4
		}
		// Every element but an empty struct takes a byte: this bounds the
		// loop by the packet, whatever count the writer claims.
		if n > uint64(len(b)-off) && n > catalog.MaxArrayLen {
			return 0, false
		}
		for i := uint64(0); i < n; i++ {
			var ok bool
			if off, ok = typeSize(t.Elem, b, off, depth+1); !ok {
				return 0, false
			}
		}
		return off, true
	case catalog.Struct:
		return fieldsSize(t.Fields, b, off, depth+1)
	}
	return 0, false
}
