// Package ring is usertrace's shared-memory ring buffer: a [Writer] that the
// traced process uses with no system call and no lock, and a [Reader] for
// another process that trusts nothing in the shared memory.
//
// The ring lives in a sealed memfd (package internal/memfd). It has a fixed
// number of shards (the user-space tracer maps a P to a shard); each shard
// has NumSub sub-buffers of SubSize bytes, and each sub-buffer is one CTF 1.8
// packet laid out by package ctf, so a consumer writes full sub-buffers to
// disk unchanged. The byte layout, the clock (TSC ticks on amd64) and the
// reasoning are in docs/ring-abi.md.
//
// # Invariants
//
// Positions: a shard's head counts bytes reserved since the ring was made;
// sub-buffer g (g = head / SubSize, counted from 0 forever) lives in slot
// g % NumSub, and its lap is g / NumSub. commit[slot] counts bytes committed
// to that slot over all its laps.
//
//  1. The head only moves by CompareAndSwap, and a writer reads the head
//     before the clock, then CASes; timestamps published in a shard never
//     decrease. A writer that may share the shard (Write, Flush) reads the
//     ordered clock (RDTSCP: after its head load, so after every
//     reservation that load saw) and raises the shard's floor before its
//     CAS; the shard's one owner (WriteOwned) reads the unordered clock and
//     clamps it to the floor (loaded after head) and to its own previous
//     timestamp. Otherwise two writers on one shard could publish
//     timestamps out of order (a CAS that succeeds proves no other
//     reservation came between its clock read and its CAS only if the
//     clock read is ordered after the head load).
//  2. A writer writes its bytes after its CAS and before its commit Add, and
//     touches no byte outside what it reserved, except the closer's fields
//     (rule 4). Otherwise a reader that saw a complete commit count could
//     copy half-written records.
//  3. Exactly SubSize bytes are committed per lap of a slot: the packet
//     header (by the writer that reserved offset 0 of the sub-buffer, the
//     starter), every record, and the padding (by the closer). A slot with
//     commit == (lap+1)*SubSize is complete. Otherwise a reader waits forever
//     or reads a packet still being written.
//  4. The closer is the one writer whose reservation took the head from
//     inside sub-buffer g to its end (by a record that fills it exactly, or
//     by reserving the padding). It alone writes timestamp_end, content_size,
//     packet_size and events_discarded, before its commit. The starter never
//     writes those fields. Otherwise a late starter could zero a closer's
//     fields.
//  5. A writer starts sub-buffer g only if the previous lap of its slot is
//     fully committed and, in discard mode, the reader has consumed it
//     (consumed > g - NumSub). Otherwise it drops the record and adds 1 to
//     the shard's lost counter; it never waits. Otherwise a writer would
//     overwrite a packet the reader is still copying, or one still being
//     written.
//  6. A compact event header (27-bit timestamp) is used only if the event's
//     time is less than 2^27 ticks (52 ms of TSC at 2.6 GHz, 134 ms of ns)
//     after the start of its packet; otherwise the extended header.
//     Timestamps within a shard are non-decreasing (rule 1), so every gap
//     between consecutive events is then below 2^27 ticks. Otherwise
//     readers rebuild wrong times.
//  7. The writer computes every index from its private geometry, masked, so
//     nothing a reader scribbles into the shared memory can make the writer
//     touch memory outside its mapping.
//  8. The reader copies the header and geometry out once, validates them,
//     and from then on uses only its private copy. It copies a packet out
//     before validating it and bounds-checks every value read from the
//     shared memory; it never panics. Otherwise a hostile writer could crash
//     or mislead the consumer.
//
// Lock order: none; there are no locks.
package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"github.com/usertrace/usertrace/ctf"
)

// Magic identifies a usertrace ring ("UTRB" in memory order).
const Magic = 0x42525455

// Version is the ring layout version this writer makes. Version 2 changed
// the unit of timestamps (ticks of the clock the header names, see
// FlagTSC) and appended the fields after created; a reader of version 2
// also reads version 1 rings (96-byte header, CLOCK_MONOTONIC ns) and
// refuses every other version.
const Version = 2

// Offsets of the ring header, at the start of the memfd. The header only ever
// grows by appending fields; HeaderSize is the size this version writes.
const (
	offMagic       = 0  // uint32
	offHeaderSize  = 4  // uint32
	offVersion     = 8  // uint32
	offFlags       = 12 // uint32, FlagOverwrite
	offTotalSize   = 16 // uint64, size of the memfd
	offNumShards   = 24 // uint32
	offNumSub      = 28 // uint32, sub-buffers per shard (power of 2)
	offSubSize     = 32 // uint32, bytes per sub-buffer (power of 2)
	offCtrlSize    = 36 // uint32, bytes per shard control block
	offCtrlOff     = 40 // uint64, offset of the first control block
	offDataOff     = 48 // uint64, offset of the first sub-buffer
	offUUID        = 56 // [16]byte, the trace uuid, also in every packet
	offClockOffset = 72 // int64, wall-clock ns minus monotonic ns at creation
	offStreamID    = 80 // uint32, CTF stream class id of the packets (0)
	offReserved    = 84 // uint32, zero
	offCreated     = 88 // int64, monotonic ns at creation
	// Version 2:
	offCreatedTicks = 96  // uint64, the timestamp clock at creation (with created and created+clock_offset)
	offTickFreq     = 104 // uint64, the writer's measure of ticks per second

	// HeaderSize is the size of the header this version writes.
	HeaderSize = 112
	// headerSizeV1 is the size of a version 1 header.
	headerSizeV1 = 96
	// headerArea is the space reserved for the header (one page).
	headerArea = 4096
)

// Header flags.
const (
	// FlagOverwrite marks a ring in overwrite (flight-recorder) mode.
	FlagOverwrite = 1
	// FlagTSC (version 2): timestamps are x86 TSC ticks (tick_freq per
	// second); without it they are CLOCK_MONOTONIC ns.
	FlagTSC = 2
)

// Bounds on a version 2 ring's tick_freq: 1 MHz to 100 GHz.
const (
	minTickFreq = 1e6
	maxTickFreq = 1e11
)

// Offsets within a shard control block. The writer-owned and reader-owned
// words sit on separate cache lines.
const (
	ctrlHead     = 0   // uint64, writer: bytes reserved
	ctrlLost     = 8   // uint64, writer: records dropped
	ctrlFlags    = 16  // uint64, writer: ShardShared
	ctrlConsumed = 64  // uint64, reader: sub-buffers consumed
	ctrlCommit   = 128 // [NumSub]uint64, writer: bytes committed per slot
)

// ShardShared is set in a shard's flags before a second P writes to it (more
// Ps than shards). Crash recovery of such a shard keeps a partial packet only
// if no reservation was in flight (see [Reader.Recover]).
const ShardShared = 1

// Limits on the geometry, checked on both sides.
const (
	MinSubSize   = 4096
	MaxSubSize   = 64 << 20
	MinNumSub    = 2
	MaxNumSub    = 1024
	MaxShards    = 1024
	MaxTotalSize = 16 << 30
)

// Defaults, sized so that a reader keeps up with two writers at full speed
// (see the drain benchmark): 16 x 256 KiB = 4 MiB per shard.
const (
	DefaultSubSize = 256 << 10
	DefaultNumSub  = 16
)

// Geometry is the shape of a ring.
type Geometry struct {
	NumShards int
	NumSub    int // per shard, power of 2
	SubSize   int // bytes, power of 2
	Overwrite bool
}

// ctrlSize is the size of a control block for numSub slots, cache-line
// rounded.
func ctrlSize(numSub int) int { return (ctrlCommit + 8*numSub + 63) &^ 63 }

func (g Geometry) check() error {
	switch {
	case g.NumShards < 1 || g.NumShards > MaxShards:
		return fmt.Errorf("ring: %d shards, want 1 to %d", g.NumShards, MaxShards)
	case g.NumSub < MinNumSub || g.NumSub > MaxNumSub || g.NumSub&(g.NumSub-1) != 0:
		return fmt.Errorf("ring: %d sub-buffers per shard, want a power of 2 from %d to %d", g.NumSub, MinNumSub, MaxNumSub)
	case g.SubSize < MinSubSize || g.SubSize > MaxSubSize || g.SubSize&(g.SubSize-1) != 0:
		return fmt.Errorf("ring: sub-buffer size %d, want a power of 2 from %d to %d", g.SubSize, MinSubSize, MaxSubSize)
	}
	if t := g.totalSize(); t > MaxTotalSize {
		return fmt.Errorf("ring: %d bytes in all, more than %d", t, MaxTotalSize)
	}
	return nil
}

func (g Geometry) ctrlOff() int { return headerArea }
func (g Geometry) dataOff() int {
	return (headerArea + g.NumShards*ctrlSize(g.NumSub) + 4095) &^ 4095
}

// totalSize is computed in int64-safe steps: every factor is bounded by check.
func (g Geometry) totalSize() int {
	return g.dataOff() + g.NumShards*g.NumSub*g.SubSize
}

// MaxPayload returns the largest payload a record can carry.
func (g Geometry) MaxPayload() int {
	return g.SubSize - ctf.PacketHeaderSize - ctf.ExtendedHeaderSize
}

// Errors of the reader. They are wrapped with details.
var (
	// ErrBadHeader: the ring header is not one this version understands or
	// does not match the memfd.
	ErrBadHeader = errors.New("ring: bad ring header")
	// ErrCorrupt: a packet or counter in the ring is inconsistent. The
	// reader skipped it and carries on.
	ErrCorrupt = errors.New("ring: corrupt data")
	// ErrEmpty: no complete packet is ready now.
	ErrEmpty = errors.New("ring: no complete packet")
)

// header is the decoded ring header.
type header struct {
	Geometry
	uuid        [16]byte
	clockOffset int64
	created     int64
	streamID    uint32
	total       int
	// Version 2 (version 1: tsc false, createdTicks = created, tickFreq 1e9).
	tsc          bool
	createdTicks uint64
	tickFreq     uint64
}

func putHeader(b []byte, h *header) {
	le := binary.LittleEndian
	le.PutUint32(b[offMagic:], Magic)
	le.PutUint32(b[offHeaderSize:], HeaderSize)
	le.PutUint32(b[offVersion:], Version)
	var flags uint32
	if h.Overwrite {
		flags |= FlagOverwrite
	}
	if h.tsc {
		flags |= FlagTSC
	}
	le.PutUint32(b[offFlags:], flags)
	le.PutUint64(b[offTotalSize:], uint64(h.total))
	le.PutUint32(b[offNumShards:], uint32(h.NumShards))
	le.PutUint32(b[offNumSub:], uint32(h.NumSub))
	le.PutUint32(b[offSubSize:], uint32(h.SubSize))
	le.PutUint32(b[offCtrlSize:], uint32(ctrlSize(h.NumSub)))
	le.PutUint64(b[offCtrlOff:], uint64(h.ctrlOff()))
	le.PutUint64(b[offDataOff:], uint64(h.dataOff()))
	copy(b[offUUID:offUUID+16], h.uuid[:])
	le.PutUint64(b[offClockOffset:], uint64(h.clockOffset))
	le.PutUint32(b[offStreamID:], h.streamID)
	le.PutUint64(b[offCreated:], uint64(h.created))
	le.PutUint64(b[offCreatedTicks:], h.createdTicks)
	le.PutUint64(b[offTickFreq:], h.tickFreq)
}

// parseHeader decodes and checks a copy of the header against the size of
// the memfd. It is the only gate between hostile bytes and the geometry.
func parseHeader(b []byte, size int) (*header, error) {
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadHeader, len(b))
	}
	le := binary.LittleEndian
	if m := le.Uint32(b[offMagic:]); m != Magic {
		return nil, fmt.Errorf("%w: magic %#x, want %#x", ErrBadHeader, m, uint32(Magic))
	}
	v := le.Uint32(b[offVersion:])
	want := uint32(HeaderSize)
	switch v {
	case 1:
		want = headerSizeV1
	case Version:
	default:
		return nil, fmt.Errorf("%w: layout version %d, this reader knows 1 and %d", ErrBadHeader, v, Version)
	}
	if hs := le.Uint32(b[offHeaderSize:]); hs < want || hs > headerArea {
		return nil, fmt.Errorf("%w: header size %d, want %d to %d", ErrBadHeader, hs, want, headerArea)
	}
	h := &header{}
	flags := le.Uint32(b[offFlags:])
	h.Overwrite = flags&FlagOverwrite != 0
	h.NumShards = int(le.Uint32(b[offNumShards:]))
	h.NumSub = int(le.Uint32(b[offNumSub:]))
	h.SubSize = int(le.Uint32(b[offSubSize:]))
	if err := h.Geometry.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadHeader, err)
	}
	h.total = h.totalSize()
	switch {
	case le.Uint64(b[offTotalSize:]) != uint64(h.total) || h.total != size:
		return nil, fmt.Errorf("%w: geometry needs %d bytes, header says %d, memfd has %d", ErrBadHeader, h.total, le.Uint64(b[offTotalSize:]), size)
	case le.Uint32(b[offCtrlSize:]) != uint32(ctrlSize(h.NumSub)):
		return nil, fmt.Errorf("%w: control block size %d, want %d", ErrBadHeader, le.Uint32(b[offCtrlSize:]), ctrlSize(h.NumSub))
	case le.Uint64(b[offCtrlOff:]) != uint64(h.ctrlOff()) || le.Uint64(b[offDataOff:]) != uint64(h.dataOff()):
		return nil, fmt.Errorf("%w: control/data offsets %d/%d, want %d/%d", ErrBadHeader,
			le.Uint64(b[offCtrlOff:]), le.Uint64(b[offDataOff:]), h.ctrlOff(), h.dataOff())
	}
	copy(h.uuid[:], b[offUUID:offUUID+16])
	h.clockOffset = int64(le.Uint64(b[offClockOffset:]))
	h.streamID = le.Uint32(b[offStreamID:])
	h.created = int64(le.Uint64(b[offCreated:]))
	h.createdTicks, h.tickFreq = uint64(h.created), 1e9
	if v >= 2 {
		h.tsc = flags&FlagTSC != 0
		h.createdTicks = le.Uint64(b[offCreatedTicks:])
		h.tickFreq = le.Uint64(b[offTickFreq:])
		if h.tickFreq < minTickFreq || h.tickFreq > maxTickFreq || !h.tsc && h.tickFreq != 1e9 {
			return nil, fmt.Errorf("%w: %d ticks per second", ErrBadHeader, h.tickFreq)
		}
	}
	return h, nil
}

// shardMem is one shard's part of the shared memory: its control words and
// its sub-buffers. The Writer and the Reader both map a shard with mapShard,
// so the layout is computed in one place.
type shardMem struct {
	head     *atomicU64
	lost     *atomicU64
	flags    *atomicU64
	consumed *atomicU64
	commit   []atomicU64
	data     []byte
}

// mapShard returns shard i of mem, a mapping of a ring of geometry g. The
// caller has checked mem's size against g (the Writer made it; the Reader's
// parseHeader matched it).
func (g Geometry) mapShard(mem []byte, i int) shardMem {
	c := g.ctrlOff() + i*ctrlSize(g.NumSub)
	d := g.dataOff() + i*g.NumSub*g.SubSize
	return shardMem{
		head:     word(mem, c+ctrlHead),
		lost:     word(mem, c+ctrlLost),
		flags:    word(mem, c+ctrlFlags),
		consumed: word(mem, c+ctrlConsumed),
		commit:   unsafe.Slice(word(mem, c+ctrlCommit), g.NumSub),
		data:     mem[d : d+g.NumSub*g.SubSize : d+g.NumSub*g.SubSize],
	}
}

// word returns the 8-byte aligned word at off of mem as an atomic. The
// caller has bounds-checked off against the geometry.
func word(mem []byte, off int) *atomicU64 {
	return (*atomicU64)(unsafe.Pointer(&mem[off : off+8][0]))
}
