package ring

import (
	"encoding/binary"
	"fmt"
	"io"
	"os"

	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/internal/memfd"
)

// Reader consumes a ring made by a [Writer] in another process (or this
// one). It trusts nothing in the shared memory (rule 8): a hostile or
// crashed writer can make it report [ErrCorrupt] or [ErrEmpty], never panic
// or read outside the mapping. A Reader is not safe for concurrent use.
type Reader struct {
	m      *memfd.Mapping
	hdr    *header
	clock  *clockCache
	shards []rshard
	next   int // shard to look at first (round robin)

	// Corrupt counts packets and counters the reader refused.
	Corrupt uint64
}

type rshard struct {
	shardMem
	pos uint64 // private: next sub-buffer number to consume
}

// Open checks that f is a sealed memfd (package memfd) holding a ring of a
// layout this reader knows, then maps it. Open takes f over in every case:
// the Reader closes it, and so does a failed Open.
//
// Errors: memfd.ErrNotSealed, memfd.ErrSize, [ErrBadHeader] (wrapped).
func Open(f *os.File) (*Reader, error) {
	m, err := memfd.Open(f, 0, MaxTotalSize)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open ring: %w", err)
	}
	mem := m.Bytes()
	var hb [HeaderSize]byte
	copy(hb[:], mem) // copy out, then validate (rule 8)
	h, err := parseHeader(hb[:], len(mem))
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("open ring: %w", err)
	}
	r := &Reader{m: m, hdr: h, clock: &clockCache{}, shards: make([]rshard, h.NumShards)}
	for i := range r.shards {
		s := &r.shards[i]
		// In bounds: parseHeader matched the mapping's size to the geometry.
		s.shardMem = h.mapShard(mem, i)
		// Resume where a previous reader stopped; a lie only makes us
		// wait for packets that never complete or skip some.
		s.pos = s.consumed.Load()
	}
	return r, nil
}

// Info returns the validated ring header.
func (r *Reader) Info() Info {
	return infoOf(r.hdr, r.clock)
}

// Lost returns the writer's count of dropped records on a shard, as the
// writer reports it.
func (r *Reader) Lost(shard int) uint64 { return r.shards[shard].lost.Load() }

// Close unmaps the ring and closes the fd.
func (r *Reader) Close() error { return r.m.Close() }

// Next copies the next complete packet of any shard into buf (grown to
// SubSize if needed) and returns the shard and the packet. It is for
// discard-mode rings; an overwrite-mode ring is read with [Reader.Snapshot]
// (its writer does not wait for Next, so Next would report the packets it
// overwrote as corrupt). It returns
// [ErrEmpty] when no packet is complete, and an error wrapping [ErrCorrupt]
// when it skipped a bad packet (call Next again). Next never blocks.
func (r *Reader) Next(buf []byte) (shard int, pkt []byte, err error) {
	for k := range r.shards {
		i := (r.next + k) % len(r.shards)
		pkt, err := r.take(i, buf)
		if err == ErrEmpty {
			continue
		}
		r.next = (i + 1) % len(r.shards)
		return i, pkt, err
	}
	return 0, nil, ErrEmpty
}

func (r *Reader) grow(buf []byte) []byte {
	if cap(buf) < r.hdr.SubSize {
		return make([]byte, r.hdr.SubSize)
	}
	return buf[:r.hdr.SubSize]
}

// take consumes the next sub-buffer of shard i if it is complete.
func (r *Reader) take(i int, buf []byte) ([]byte, error) {
	slot, err := r.ready(i)
	if err != nil {
		return nil, err
	}
	s := &r.shards[i]
	sub := uint64(r.hdr.SubSize)
	buf = r.grow(buf)
	copy(buf, s.data[slot*sub:(slot+1)*sub]) // copy, then validate (rule 8)
	pos := s.pos
	r.advance(s)
	if err := r.check(buf, len(buf), i, pos); err != nil {
		r.Corrupt++
		return nil, fmt.Errorf("read shard %d packet %d: %w", i, pos, err)
	}
	return buf, nil
}

// WriteNext writes the next complete packet of any shard to w straight from
// the shared memory, without the copy that [Reader.Next] makes, and returns
// the shard and the packet size. Only the packet header is copied and
// validated: a hostile writer can put garbage into the bytes written (its own
// trace), but cannot make the reader misbehave. Errors as for Next, or w's.
func (r *Reader) WriteNext(w io.Writer) (shard, n int, err error) {
	return r.WriteNextTo(func(int) io.Writer { return w })
}

// WriteNextTo is [Reader.WriteNext] with a writer per shard: the packet goes
// to to(shard), as for a trace directory's one stream file per shard.
func (r *Reader) WriteNextTo(to func(shard int) io.Writer) (shard, n int, err error) {
	for k := range r.shards {
		i := (r.next + k) % len(r.shards)
		slot, err := r.ready(i)
		if err == ErrEmpty {
			continue
		}
		r.next = (i + 1) % len(r.shards)
		if err != nil {
			return i, 0, err
		}
		s := &r.shards[i]
		sub := uint64(r.hdr.SubSize)
		pkt := s.data[slot*sub : (slot+1)*sub]
		var hdr [ctf.PacketHeaderSize]byte
		copy(hdr[:], pkt)
		pos := s.pos
		if err := r.check(hdr[:], len(pkt), i, pos); err != nil {
			r.advance(s)
			r.Corrupt++
			return i, 0, fmt.Errorf("read shard %d packet %d: %w", i, pos, err)
		}
		// The slot cannot be reused before advance (rule 5), so an honest
		// writer leaves it alone while w copies it.
		n, err := to(i).Write(pkt)
		r.advance(s)
		return i, n, err
	}
	return 0, 0, ErrEmpty
}

// ready returns the slot of shard i's next sub-buffer if it is complete.
func (r *Reader) ready(i int) (uint64, error) {
	s := &r.shards[i]
	sub := uint64(r.hdr.SubSize)
	// Never run ahead of the head the writer claims, nor stay further
	// behind it than the ring holds: this bounds the work a hostile writer
	// can cause (a lying head costs at most NumSub skipped packets).
	head := s.head.Load()
	gh := head / sub
	if s.pos > gh {
		return 0, ErrEmpty
	}
	// Discard mode: the writer starts packet g only if g < pos + NumSub
	// (rule 5), so its head is at most at the start of pos + NumSub.
	if n := uint64(r.hdr.NumSub); !r.hdr.Overwrite && (gh-s.pos > n || gh-s.pos == n && head%sub != 0) {
		from := s.pos
		s.pos = gh - n + 1
		s.consumed.Store(s.pos)
		r.Corrupt++
		return 0, fmt.Errorf("read shard %d: %w: head is %d packets ahead of packet %d, the ring holds %d", i, ErrCorrupt, gh-from, from, n)
	}
	lap := s.pos / uint64(r.hdr.NumSub)
	slot := s.pos % uint64(r.hdr.NumSub)
	c := s.commit[slot].Load() // pairs with the writers' commit Add (rule 2)
	switch {
	case c == (lap+1)*sub:
		return slot, nil
	case c >= lap*sub && c < (lap+1)*sub:
		return 0, ErrEmpty
	default:
		// Not a count an honest writer makes in discard mode (rule 3).
		pos := s.pos
		r.advance(s)
		r.Corrupt++
		return 0, fmt.Errorf("read shard %d packet %d: %w: commit count %d outside [%d, %d]", i, pos, ErrCorrupt, c, lap*sub, (lap+1)*sub)
	}
}

// advance consumes one sub-buffer and tells the writer (rule 5).
func (r *Reader) advance(s *rshard) {
	s.pos++
	s.consumed.Store(s.pos)
}

// check validates the header of a packet of n bytes copied out of shard i
// as number pos.
func (r *Reader) check(pkt []byte, n, i int, pos uint64) error {
	h, err := ctf.ParseHeader(pkt, n)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	switch {
	case h.UUID != r.hdr.uuid:
		return fmt.Errorf("%w: packet uuid is not the ring's", ErrCorrupt)
	case h.StreamID != r.hdr.streamID || h.StreamInstanceID != uint64(i) || h.CPUID != uint32(i):
		return fmt.Errorf("%w: packet says stream %d instance %d cpu %d", ErrCorrupt, h.StreamID, h.StreamInstanceID, h.CPUID)
	case h.PacketSeqNum != pos:
		return fmt.Errorf("%w: packet number %d", ErrCorrupt, h.PacketSeqNum)
	}
	return nil
}

// Recover drains a ring whose writer is gone (killed, or stopped after a
// final [Writer.Flush] that this reader may not have seen): every complete
// packet, then the committed prefix of each shard's unfinished packets,
// closed by the reader (content_size and packet_size set to the prefix,
// timestamp_end to the reader's read of the ring's clock, the same TSC or
// CLOCK_MONOTONIC).
// A prefix is kept only if it is exact: the shard had one writer at a time
// ([ShardShared] clear; committed bytes are then contiguous) or no
// reservation was in flight. fn gets each packet, in order per shard; the
// slice is reused. Recover returns the first error of fn, else the number of
// partial packets it dropped as inexact and any corruption seen (wrapped
// [ErrCorrupt]) joined.
func (r *Reader) Recover(fn func(shard int, pkt []byte) error) (dropped int, err error) {
	buf := make([]byte, r.hdr.SubSize)
	var bad error
	sub := uint64(r.hdr.SubSize)
	for i := range r.shards {
		s := &r.shards[i]
		for range 2*r.hdr.NumSub + 2 { // bounded: take never passes the head
			pkt, err := r.take(i, buf)
			if err == ErrEmpty {
				break
			}
			if err != nil {
				bad = err
				continue
			}
			if err := fn(i, pkt); err != nil {
				return dropped, err
			}
		}
		// s.pos is the first unfinished sub-buffer; the writer's head may
		// be in it or (closed but not fully committed) beyond it.
		head := s.head.Load()
		for k := 0; s.pos <= head/sub && k <= r.hdr.NumSub; k++ {
			lap := s.pos / uint64(r.hdr.NumSub)
			slot := s.pos % uint64(r.hdr.NumSub)
			c := s.commit[slot].Load()
			if c < lap*sub || c >= (lap+1)*sub {
				break // nothing there, or already complete (taken above)
			}
			n := c - lap*sub
			reserved := sub
			if head/sub == s.pos {
				reserved = head % sub
			}
			pos := s.pos
			if n < ctf.PacketHeaderSize {
				break // not even a header: nothing committed
			}
			exact := s.flags.Load()&ShardShared == 0 || n == reserved
			if !exact {
				dropped++
				r.advance(s)
				continue
			}
			copy(buf[:n], s.data[slot*sub:slot*sub+n])
			r.advance(s)
			pkt := buf[:n]
			le := binary.LittleEndian
			le.PutUint64(pkt[ctf.OffContentSize:], n*8)
			le.PutUint64(pkt[ctf.OffPacketSize:], n*8)
			// The reader reads the writer's clock (the TSC, or
			// CLOCK_MONOTONIC unless they live in different time
			// namespaces); never end before the beginning.
			le.PutUint64(pkt[ctf.OffTimestampEnd:], max(r.hdr.now(), le.Uint64(pkt[ctf.OffTimestampBegin:])))
			le.PutUint64(pkt[ctf.OffEventsDiscarded:], s.lost.Load())
			if err := r.check(pkt, len(pkt), i, pos); err != nil {
				r.Corrupt++
				bad = fmt.Errorf("recover shard %d packet %d: %w", i, pos, err)
				continue
			}
			if err := fn(i, pkt); err != nil {
				return dropped, err
			}
		}
	}
	return dropped, bad
}

// Snapshot copies, without consuming, every complete packet still in the
// ring, oldest first per shard, and calls fn with each. It is how an
// overwrite-mode (flight recorder) ring is read: call [Writer.Flush] first
// to include the newest data. A packet that the writer started to overwrite
// while it was being copied is detected (the head moved past its slot's
// next lap) and left out, so every packet given to fn is consistent. The
// slice given to fn is reused.
func (r *Reader) Snapshot(fn func(shard int, pkt []byte) error) error {
	buf := make([]byte, r.hdr.SubSize)
	sub := uint64(r.hdr.SubSize)
	nsub := uint64(r.hdr.NumSub)
	for i := range r.shards {
		s := &r.shards[i]
		head := s.head.Load()
		last := head / sub // the newest sub-buffer, maybe unfinished
		if head%sub == 0 {
			if last == 0 {
				continue
			}
			last-- // not started: the newest is the one before
		}
		first := uint64(0)
		if last+1 > nsub {
			first = last + 1 - nsub
		}
		for g := first; g <= last; g++ {
			lap, slot := g/nsub, g%nsub
			if s.commit[slot].Load() != (lap+1)*sub {
				continue // incomplete, or overwritten since we read head
			}
			copy(buf, s.data[slot*sub:(slot+1)*sub])
			// The writer CASes the head past the slot's next lap before
			// it writes a byte of it (rule 2), so a head that has not
			// moved there means the copy is whole. On amd64 loads are not
			// reordered with later loads, so the copy happens before this
			// load.
			if s.head.Load() > (g+nsub)*sub {
				continue
			}
			if err := r.check(buf, len(buf), i, g); err != nil {
				r.Corrupt++
				continue
			}
			if err := fn(i, buf); err != nil {
				return err
			}
		}
	}
	return nil
}
