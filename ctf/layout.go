// Package ctf lays out usertrace trace data as CTF 1.8 (Common Trace Format):
// the packet header and packet context that start every ring sub-buffer, the
// compact event header in front of every record, the TSDL metadata generated
// from the description catalog ([Metadata]), a hostile-safe packet parser
// ([Packet.Events]) and a trace-directory writer ([Dir]).
//
// The layout here is the single source of truth: package ring writes these
// bytes, [Metadata] describes them, and babeltrace2 reads the result. The
// full description is docs/ctf.md.
//
// # Rules for changing the layout
//
//  1. Every offset below is mirrored in the TSDL emitted by [Metadata];
//     change both together (TestMetadataMatchesLayout decodes a packet with
//     babeltrace2). Otherwise babeltrace2 misreads every packet.
//  2. All integers are little-endian and byte-aligned (align = 8 bits), the
//     same as the payload layout of package catalog, so payloads are copied
//     into packets unchanged.
//  3. A new packet-context field is appended after CPUID and PacketHeaderSize
//     grows; readers check sizes against PacketHeaderSize of their version.
package ctf

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic is the CTF packet magic number.
const Magic = 0xC1FC1FC1

// Byte offsets of the packet header (trace.packet.header) and the packet
// context (stream.packet.context) at the start of every packet.
const (
	OffMagic            = 0  // uint32
	OffUUID             = 4  // [16]uint8, the trace uuid
	OffStreamID         = 20 // uint32, stream class id (always 0)
	OffStreamInstanceID = 24 // uint64, the ring shard
	OffTimestampBegin   = 32 // uint64, clock value of the first event (lower bound)
	OffTimestampEnd     = 40 // uint64, clock value >= every event of the packet
	OffContentSize      = 48 // uint64, bits of header and events
	OffPacketSize       = 56 // uint64, bits of the whole packet (content + padding)
	OffPacketSeqNum     = 64 // uint64, per-stream packet number (ring sub-buffer sequence)
	OffEventsDiscarded  = 72 // uint64, events dropped on this stream so far (free-running)
	OffCPUID            = 80 // uint32, the shard again, for viewers that group by cpu
	// PacketHeaderSize is the size of header plus context: events start here.
	PacketHeaderSize = 84
)

// Event header. A compact header is one little-endian uint32: the event id in
// bits 0-4 and the low 27 bits of the timestamp in bits 5-31. Id 31 marks an
// extended header: that byte, then the uint32 event id and the uint64
// timestamp (13 bytes). The compact form is correct only when the event's
// time is less than 2^27 ns (134 ms) after the previous event of its stream
// (or the packet's timestamp_begin): a reader rebuilds the full time from
// the previous one.
const (
	CompactHeaderSize  = 4
	ExtendedHeaderSize = 13
	MaxCompactID       = 30 // ids 0..30 fit a compact header
	extendedID         = 31
	CompactTSBits      = 27
	CompactTSMask      = 1<<CompactTSBits - 1
)

// PutCompactHeader writes a compact event header at b[0:4]. id must be at
// most MaxCompactID.
func PutCompactHeader(b []byte, id uint32, ts uint64) {
	binary.LittleEndian.PutUint32(b, id|uint32(ts&CompactTSMask)<<5)
}

// PutExtendedHeader writes an extended event header at b[0:13].
func PutExtendedHeader(b []byte, id uint32, ts uint64) {
	_ = b[12]
	b[0] = extendedID
	binary.LittleEndian.PutUint32(b[1:], id)
	binary.LittleEndian.PutUint64(b[5:], ts)
}

// PacketHeader is the decoded packet header and context.
type PacketHeader struct {
	UUID             [16]byte
	StreamID         uint32
	StreamInstanceID uint64
	TimestampBegin   uint64
	TimestampEnd     uint64
	ContentSize      uint64 // bits
	PacketSize       uint64 // bits
	PacketSeqNum     uint64
	EventsDiscarded  uint64
	CPUID            uint32
}

// Put writes h, with the magic number, at b[0:PacketHeaderSize].
func (h *PacketHeader) Put(b []byte) {
	_ = b[PacketHeaderSize-1]
	le := binary.LittleEndian
	le.PutUint32(b[OffMagic:], Magic)
	copy(b[OffUUID:OffUUID+16], h.UUID[:])
	le.PutUint32(b[OffStreamID:], h.StreamID)
	le.PutUint64(b[OffStreamInstanceID:], h.StreamInstanceID)
	le.PutUint64(b[OffTimestampBegin:], h.TimestampBegin)
	le.PutUint64(b[OffTimestampEnd:], h.TimestampEnd)
	le.PutUint64(b[OffContentSize:], h.ContentSize)
	le.PutUint64(b[OffPacketSize:], h.PacketSize)
	le.PutUint64(b[OffPacketSeqNum:], h.PacketSeqNum)
	le.PutUint64(b[OffEventsDiscarded:], h.EventsDiscarded)
	le.PutUint32(b[OffCPUID:], h.CPUID)
}

// ErrCorrupt is returned (wrapped) for a packet that is not well formed.
var ErrCorrupt = errors.New("ctf: corrupt packet")

// ParsePacketHeader decodes and checks the header of the packet in b: the
// magic number, and sizes that fit b and each other.
func ParsePacketHeader(b []byte) (PacketHeader, error) { return ParseHeader(b, len(b)) }

// ParseHeader is [ParsePacketHeader] for a packet of packetLen bytes of
// which b holds at least the header.
func ParseHeader(b []byte, packetLen int) (PacketHeader, error) {
	var h PacketHeader
	if len(b) < PacketHeaderSize {
		return h, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrCorrupt, len(b), PacketHeaderSize)
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[OffMagic:]); m != Magic {
		return h, fmt.Errorf("%w: magic %#x, want %#x", ErrCorrupt, m, uint32(Magic))
	}
	copy(h.UUID[:], b[OffUUID:OffUUID+16])
	h.StreamID = le.Uint32(b[OffStreamID:])
	h.StreamInstanceID = le.Uint64(b[OffStreamInstanceID:])
	h.TimestampBegin = le.Uint64(b[OffTimestampBegin:])
	h.TimestampEnd = le.Uint64(b[OffTimestampEnd:])
	h.ContentSize = le.Uint64(b[OffContentSize:])
	h.PacketSize = le.Uint64(b[OffPacketSize:])
	h.PacketSeqNum = le.Uint64(b[OffPacketSeqNum:])
	h.EventsDiscarded = le.Uint64(b[OffEventsDiscarded:])
	h.CPUID = le.Uint32(b[OffCPUID:])
	switch {
	case packetLen < PacketHeaderSize || h.PacketSize != uint64(packetLen)*8:
		return h, fmt.Errorf("%w: packet_size %d bits, packet is %d bytes", ErrCorrupt, h.PacketSize, packetLen)
	case h.ContentSize%8 != 0 || h.ContentSize < PacketHeaderSize*8 || h.ContentSize > h.PacketSize:
		return h, fmt.Errorf("%w: content_size %d bits not a byte count within [%d, %d]", ErrCorrupt, h.ContentSize, PacketHeaderSize*8, h.PacketSize)
	case h.TimestampEnd < h.TimestampBegin:
		return h, fmt.Errorf("%w: timestamp_end %d before timestamp_begin %d", ErrCorrupt, h.TimestampEnd, h.TimestampBegin)
	}
	return h, nil
}
