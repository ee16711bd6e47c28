package ring

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/internal/memfd"
	"github.com/usertrace/usertrace/internal/rt"
)

type atomicU64 = atomic.Uint64

// Config chooses the shape of a new ring. Zero fields take defaults.
type Config struct {
	NumShards int  // default 1
	NumSub    int  // sub-buffers per shard, power of 2; default DefaultNumSub
	SubSize   int  // bytes per sub-buffer, power of 2; default DefaultSubSize
	Overwrite bool // flight-recorder mode instead of discard mode
	Name      string
}

// Writer is the writing side of a ring. Its methods are safe for concurrent
// use; Write never blocks, allocates or makes a system call.
type Writer struct {
	m      *memfd.Mapping
	hdr    header
	shards []wshard
	clock  *clockCache

	// Private geometry (rule 7).
	subSize  uint64
	subMask  uint64
	subShift uint
	slotMask uint64
	numSub   uint64
	lapShift uint
	maxRec   uint64 // largest payload: MaxPayload
}

// wshard is the writer's private view of one shard. Pointers come from the
// private geometry; begin is private too.
type wshard struct {
	shardMem
	// begin packs the current packet's number (low 16 bits, in bits 48-63)
	// with its timestamp_begin >> 10 (bits 0-47), for rule 6. Written by
	// the starter after its CAS; a writer that finds another packet number
	// there uses the extended header.
	begin atomic.Uint64
	// prev is the last timestamp the shard's owner published (WriteOwned;
	// one owner at a time). floor is raised, never lowered, by every other
	// reservation (Write, Flush) before its CAS. An owned write takes the
	// max of the clock and both, so that timestamps never go back (rule 1).
	prev  atomic.Uint64
	floor atomic.Uint64
	id    uint64
	_     [16]byte // 128 bytes: keep shards on separate cache lines (prev is stored per event)
}

// Create makes a ring in a fresh sealed memfd.
func Create(cfg Config) (*Writer, error) {
	g := Geometry{NumShards: cfg.NumShards, NumSub: cfg.NumSub, SubSize: cfg.SubSize, Overwrite: cfg.Overwrite}
	if g.NumShards == 0 {
		g.NumShards = 1
	}
	if g.NumSub == 0 {
		g.NumSub = DefaultNumSub
	}
	if g.SubSize == 0 {
		g.SubSize = DefaultSubSize
	}
	if err := g.check(); err != nil {
		return nil, fmt.Errorf("create ring: %w", err)
	}
	h := header{Geometry: g, total: g.totalSize()}
	if _, err := rand.Read(h.uuid[:]); err != nil {
		return nil, fmt.Errorf("create ring: %w", err)
	}
	h.uuid[6] = h.uuid[6]&0x0f | 0x40 // version 4
	h.uuid[8] = h.uuid[8]&0x3f | 0x80
	// The timestamp clock (docs/ring-abi.md, "Clock"): its rate, and one
	// instant on it, CLOCK_MONOTONIC and the wall clock, read back to back
	// (the tightest of a few tries).
	h.tsc = rt.TicksAreTSC()
	h.tickFreq = rt.TicksPerSecond()
	if h.tickFreq < minTickFreq || h.tickFreq > maxTickFreq {
		return nil, fmt.Errorf("create ring: the TSC measured at %d ticks per second", h.tickFreq)
	}
	st := rt.Now(h.tsc)
	h.clockOffset = st.Wall - st.Mono
	h.created = st.Mono
	h.createdTicks = st.Ticks
	name := cfg.Name
	if name == "" {
		name = "usertrace-ring"
	}
	m, err := memfd.Create(name, h.total)
	if err != nil {
		return nil, fmt.Errorf("create ring: %w", err)
	}
	mem := m.Bytes()
	putHeader(mem, &h)
	w := &Writer{
		m:        m,
		hdr:      h,
		clock:    &clockCache{},
		shards:   make([]wshard, g.NumShards),
		subSize:  uint64(g.SubSize),
		subMask:  uint64(g.SubSize - 1),
		subShift: uint(log2(g.SubSize)),
		slotMask: uint64(g.NumSub - 1),
		numSub:   uint64(g.NumSub),
		lapShift: uint(log2(g.NumSub)),
		maxRec:   uint64(g.MaxPayload()),
	}
	for i := range w.shards {
		s := &w.shards[i]
		s.shardMem = g.mapShard(mem, i)
		s.id = uint64(i)
		s.begin.Store(^uint64(0)) // matches no packet number
	}
	return w, nil
}

func log2(n int) int {
	k := 0
	for 1<<k < n {
		k++
	}
	return k
}

// File returns the ring's memfd, to be sent to a reader.
func (w *Writer) File() *os.File { return w.m.File() }

// NewReader opens a [Reader] on a duplicate of the ring's memfd, through
// every check [Open] makes, as a consumer in another process would: for a
// consumer in the writing process itself (tests, examples, in-process
// snapshots). The Reader is independent of w: close both.
func (w *Writer) NewReader() (*Reader, error) {
	fd, err := unix.FcntlInt(w.m.File().Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("ring: duplicate the memfd: %w", err)
	}
	return Open(os.NewFile(uintptr(fd), "ring"))
}

// Geometry returns the ring's shape.
func (w *Writer) Geometry() Geometry { return w.hdr.Geometry }

// UUID returns the trace uuid written into every packet.
func (w *Writer) UUID() [16]byte { return w.hdr.uuid }

// ClockOffset returns wall-clock minus monotonic time, in ns, at creation.
// It maps timestamps to wall time only if they are ns (see [Writer.Info]
// and [Info.Clock]).
func (w *Writer) ClockOffset() int64 { return w.hdr.clockOffset }

// Info returns what a reader of the ring learns from its header.
func (w *Writer) Info() Info { return infoOf(&w.hdr, w.clock) }

// Lost returns the number of records dropped on a shard.
func (w *Writer) Lost(shard int) uint64 { return w.shards[shard].lost.Load() }

// MarkShared records that more than one P may write to the shard (see
// [ShardShared]). Call it before such a write; it is cheap when already set.
func (w *Writer) MarkShared(shard int) {
	s := &w.shards[uint(shard)%uint(len(w.shards))]
	if s.flags.Load()&ShardShared == 0 {
		s.flags.Or(ShardShared)
	}
}

// Close unmaps the ring and closes the memfd. A reader holding the fd keeps
// the memory. No Write may run during or after Close.
func (w *Writer) Close() error { return w.m.Close() }

const beginNumBits = 16

func packBegin(g, ts uint64) uint64 { return g<<(64-beginNumBits) | (ts>>10)&(1<<(64-beginNumBits)-1) }

// Write appends one record (event id, current time, payload) to the shard
// (taken modulo the number of shards) and reports whether it was stored; a
// dropped record is counted in the shard's lost counter. The time is read
// inside the reservation (rule 1). Write is lock-free: a CAS loop on the
// shard's head, then a copy, then an atomic add to the slot's commit count.
// Any number of goroutines may Write to a shard at once; it reads the
// ordered clock (RDTSCP). See [Writer.WriteOwned] for the faster form.
func (w *Writer) Write(shard int, id uint32, payload []byte) bool {
	return w.write(shard, id, payload, false)
}

// WriteOwned is [Writer.Write] for the shard's owner: the caller promises
// that no other WriteOwned runs on this shard at the same time and that its
// calls on it are ordered (happen one after the other, as calls from one
// pinned P are). Write and Flush may run concurrently with it. It reads the
// clock unordered (plain RDTSC) and clamps it (rule 1).
func (w *Writer) WriteOwned(shard int, id uint32, payload []byte) bool {
	return w.write(shard, id, payload, true)
}

// now reads the clock for a reservation whose head load came just before
// (rule 1). An owner's plain read may run ahead of that load or of its own
// previous read, so it is clamped to the last timestamp the owner
// published and to the floor that every other reservation raises before
// its CAS (loaded after head: x86 keeps loads in order, so a floor raised
// before a CAS that head shows is seen). Every other writer reads the
// ordered clock, which is after its head load and so after every
// reservation that load observed, and raises the floor for owners.
func (s *wshard) now(owned bool) uint64 {
	if owned {
		ts := rt.Ticks()
		if p := s.prev.Load(); ts < p {
			ts = p
		}
		if f := s.floor.Load(); ts < f {
			ts = f
		}
		return ts
	}
	ts := rt.TicksOrdered()
	if p := s.prev.Load(); ts < p {
		ts = p
	}
	for {
		f := s.floor.Load()
		if ts <= f {
			return f
		}
		if s.floor.CompareAndSwap(f, ts) {
			return ts
		}
	}
}

func (w *Writer) write(shard int, id uint32, payload []byte, owned bool) bool {
	if uint(shard) >= uint(len(w.shards)) {
		shard = int(uint(shard) % uint(len(w.shards)))
	}
	s := &w.shards[shard]
	n := uint64(len(payload))
	if n > w.maxRec {
		s.lost.Add(1)
		return false
	}
	for {
		old := s.head.Load()
		ts := s.now(owned) // after the head load: rule 1
		off := old & w.subMask
		g := old >> w.subShift
		base := (g & w.slotMask) << w.subShift
		if off == 0 {
			// Start sub-buffer g (rule 5), with this record as its first.
			if !w.canStart(s, g) {
				if s.head.Load() != old {
					// A stale head: others started sub-buffer g
					// (and committed to it) since our load. Not
					// a reason to drop.
					continue
				}
				s.lost.Add(1)
				return false
			}
			hl := uint64(ctf.CompactHeaderSize)
			if id > ctf.MaxCompactID {
				hl = ctf.ExtendedHeaderSize
			}
			used := ctf.PacketHeaderSize + hl + n
			if !s.head.CompareAndSwap(old, old+used) {
				continue
			}
			if owned {
				s.prev.Store(ts)
			}
			s.begin.Store(packBegin(g, ts))
			pkt := s.data[base : base+w.subSize : base+w.subSize]
			w.putStart(pkt, s, g, ts)
			putRecord(pkt[ctf.PacketHeaderSize:], id, ts, hl, payload)
			if used == w.subSize {
				w.putEnd(pkt, s, used, ts) // also the closer (rule 4)
			}
			s.commit[g&w.slotMask].Add(used) // pairs with the reader's commit load
			return true
		}
		hl := uint64(ctf.ExtendedHeaderSize)
		if id <= ctf.MaxCompactID {
			// Rule 6: compact only within 2^27 ticks of this packet's begin.
			if b := s.begin.Load(); b>>(64-beginNumBits) == g&(1<<beginNumBits-1) &&
				ts-(b&(1<<(64-beginNumBits)-1))<<10 < 1<<ctf.CompactTSBits {
				hl = ctf.CompactHeaderSize
			}
		}
		rec := hl + n
		if off+rec > w.subSize {
			// Close sub-buffer g by reserving its padding (rule 4), then
			// retry in the next one.
			if !s.head.CompareAndSwap(old, old-off+w.subSize) {
				continue
			}
			if owned {
				s.prev.Store(ts)
			}
			pkt := s.data[base : base+w.subSize : base+w.subSize]
			w.putEnd(pkt, s, off, ts)
			s.commit[g&w.slotMask].Add(w.subSize - off)
			continue
		}
		if !s.head.CompareAndSwap(old, old+rec) {
			continue
		}
		if owned {
			s.prev.Store(ts)
		}
		pkt := s.data[base : base+w.subSize : base+w.subSize]
		putRecord(pkt[off:], id, ts, hl, payload)
		if off+rec == w.subSize {
			w.putEnd(pkt, s, w.subSize, ts)
		}
		s.commit[g&w.slotMask].Add(rec)
		return true
	}
}

// canStart applies rule 5 to sub-buffer g of s.
func (w *Writer) canStart(s *wshard, g uint64) bool {
	lap := g >> w.lapShift
	if s.commit[g&w.slotMask].Load() != lap<<w.subShift {
		return false // the previous lap of the slot is still being written
	}
	if !w.hdr.Overwrite && g >= w.numSub && s.consumed.Load() <= g-w.numSub {
		return false // the reader has not consumed the previous lap
	}
	return true
}

func putRecord(b []byte, id uint32, ts, hl uint64, payload []byte) {
	if hl == ctf.CompactHeaderSize {
		ctf.PutCompactHeader(b, id, ts)
	} else {
		ctf.PutExtendedHeader(b, id, ts)
	}
	copy(b[hl:], payload)
}

// putStart writes the starter's fields of the packet header (rule 4).
func (w *Writer) putStart(pkt []byte, s *wshard, g, ts uint64) {
	_ = pkt[ctf.PacketHeaderSize-1]
	le := binary.LittleEndian
	le.PutUint32(pkt[ctf.OffMagic:], ctf.Magic)
	copy(pkt[ctf.OffUUID:ctf.OffUUID+16], w.hdr.uuid[:])
	le.PutUint32(pkt[ctf.OffStreamID:], w.hdr.streamID)
	le.PutUint64(pkt[ctf.OffStreamInstanceID:], s.id)
	le.PutUint64(pkt[ctf.OffTimestampBegin:], ts)
	le.PutUint64(pkt[ctf.OffPacketSeqNum:], g)
	le.PutUint32(pkt[ctf.OffCPUID:], uint32(s.id))
}

// putEnd writes the closer's fields (rule 4); content is in bytes.
func (w *Writer) putEnd(pkt []byte, s *wshard, content, ts uint64) {
	_ = pkt[ctf.PacketHeaderSize-1]
	le := binary.LittleEndian
	le.PutUint64(pkt[ctf.OffTimestampEnd:], ts)
	le.PutUint64(pkt[ctf.OffContentSize:], content*8)
	le.PutUint64(pkt[ctf.OffPacketSize:], w.subSize*8)
	le.PutUint64(pkt[ctf.OffEventsDiscarded:], s.lost.Load())
}

// Flush closes the partly filled sub-buffer of every shard so that a reader
// can consume it. Records written after Flush go to new sub-buffers. Call it
// when tracing stops and before a snapshot.
func (w *Writer) Flush() {
	for i := range w.shards {
		s := &w.shards[i]
		for {
			old := s.head.Load()
			ts := s.now(false) // ordered, raises the floor: rule 1
			off := old & w.subMask
			if off == 0 {
				break
			}
			if !s.head.CompareAndSwap(old, old-off+w.subSize) {
				continue
			}
			g := old >> w.subShift
			base := (g & w.slotMask) << w.subShift
			w.putEnd(s.data[base:base+w.subSize:base+w.subSize], s, off, ts)
			s.commit[g&w.slotMask].Add(w.subSize - off)
			break
		}
	}
}
