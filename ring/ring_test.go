package ring

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
)

// seqEvents is the event table of the tests: id 0 carries (writer uint32,
// seq uint64); id 40 (extended header) the same fields.
var seqEvents = func() []*catalog.Event {
	e := &catalog.Event{Provider: "test", Name: "seq", Fields: []catalog.Field{
		{Name: "writer", Type: catalog.Type{Kind: catalog.Uint32}},
		{Name: "seq", Type: catalog.Type{Kind: catalog.Uint64}},
	}}
	t := make([]*catalog.Event, 41)
	t[0], t[40] = e, e
	return t
}()

func seqPayload(b *[12]byte, writer uint32, seq uint64) []byte {
	binary.LittleEndian.PutUint32(b[0:], writer)
	binary.LittleEndian.PutUint64(b[4:], seq)
	return b[:]
}

// openReader opens a reader on a dup of w's memfd, as another process would.
func openReader(t testing.TB, w *Writer) *Reader {
	t.Helper()
	r, err := w.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// collector checks per-writer sequence order of decoded records.
type collector struct {
	t    testing.TB
	next map[uint32]uint64 // next expected seq per writer (gaps allowed when lossy)
	n    int
	ts   map[int]uint64 // last timestamp per shard
}

func newCollector(t testing.TB) *collector {
	return &collector{t: t, next: map[uint32]uint64{}, ts: map[int]uint64{}}
}

func (c *collector) packet(shard int, pkt []byte, exact bool) {
	c.t.Helper()
	err := ctf.Events(pkt, seqEvents, func(e ctf.Event) bool {
		if len(e.Payload) != 12 {
			c.t.Fatalf("payload %d bytes", len(e.Payload))
		}
		wr := binary.LittleEndian.Uint32(e.Payload)
		seq := binary.LittleEndian.Uint64(e.Payload[4:])
		if exact && seq != c.next[wr] || seq < c.next[wr] {
			c.t.Fatalf("writer %d: seq %d, want %d", wr, seq, c.next[wr])
		}
		c.next[wr] = seq + 1
		if e.Timestamp < c.ts[shard] {
			c.t.Fatalf("shard %d: time went back", shard)
		}
		c.ts[shard] = e.Timestamp
		c.n++
		return true
	})
	if err != nil {
		c.t.Fatal(err)
	}
}

func TestWriteFlushRead(t *testing.T) {
	w, err := Create(Config{NumShards: 2, NumSub: 4, SubSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := openReader(t, w)
	defer r.Close()
	c := newCollector(t)
	var b [12]byte
	buf := make([]byte, 4096)
	const n = 5000
	for i := range uint64(n) {
		id := uint32(0)
		if i%7 == 3 {
			id = 40 // extended header
		}
		for !w.Write(int(i%2), id, seqPayload(&b, uint32(i%2), i/2)) {
			// Full: drain. (Write counted the drop.)
			for {
				sh, pkt, err := r.Next(buf)
				if err == ErrEmpty {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				c.packet(sh, pkt, true)
			}
		}
	}
	w.Flush()
	for {
		sh, pkt, err := r.Next(buf)
		if err == ErrEmpty {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c.packet(sh, pkt, true)
	}
	lost := w.Lost(0) + w.Lost(1)
	if c.n != n {
		t.Fatalf("read %d records, wrote %d (lost counted %d)", c.n, n, lost)
	}
	if r.Corrupt != 0 {
		t.Fatalf("%d corrupt", r.Corrupt)
	}
}

// TestConcurrentDiscard runs writers on shared shards while a reader drains:
// every record is either read, in order, or counted as lost, exactly.
func TestConcurrentDiscard(t *testing.T) {
	w, err := Create(Config{NumShards: 2, NumSub: 4, SubSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.MarkShared(0)
	w.MarkShared(1)
	r := openReader(t, w)
	defer r.Close()
	const writers, per = 6, 20000
	var stored atomic.Int64
	var wg sync.WaitGroup
	for k := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [12]byte
			for i := range uint64(per) {
				if w.Write(k%2, uint32(0), seqPayload(&b, uint32(k), i)) {
					stored.Add(1)
				}
			}
		}()
	}
	defer wg.Wait() // before w.Close, even if the test fails
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	c := newCollector(t)
	buf := make([]byte, 4096)
	finished := false
	for {
		sh, pkt, err := r.Next(buf)
		if err == ErrEmpty {
			if finished {
				break
			}
			select {
			case <-done:
				w.Flush()
				finished = true
			default:
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		c.packet(sh, pkt, false)
	}
	lost := w.Lost(0) + w.Lost(1)
	if int64(c.n) != stored.Load() || uint64(c.n)+lost != writers*per {
		t.Fatalf("read %d, stored %d, lost %d, wrote %d", c.n, stored.Load(), lost, writers*per)
	}
	if r.Lost(0)+r.Lost(1) != lost {
		t.Fatal("reader sees other lost counts")
	}
	t.Logf("read %d, lost %d", c.n, lost)
}

func TestDiscardCountsExactly(t *testing.T) {
	w, err := Create(Config{NumShards: 1, NumSub: 2, SubSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var b [12]byte
	ok := 0
	const n = 10000
	for i := range uint64(n) {
		if w.Write(0, 0, seqPayload(&b, 0, i)) {
			ok++
		}
	}
	if uint64(ok)+w.Lost(0) != n || ok == 0 || ok > 2*4096/16 {
		t.Fatalf("stored %d, lost %d of %d", ok, w.Lost(0), n)
	}
	r := openReader(t, w)
	defer r.Close()
	c := newCollector(t)
	w.Flush() // nothing partial: the writer was stuck at a full ring
	buf := make([]byte, 4096)
	for {
		sh, pkt, err := r.Next(buf)
		if err == ErrEmpty {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		c.packet(sh, pkt, true)
	}
	if c.n != ok {
		t.Fatalf("read %d, stored %d", c.n, ok)
	}
	// The ring has room again, and the next packet reports the drops.
	if !w.Write(0, 0, seqPayload(&b, 0, uint64(ok))) {
		t.Fatal("write after drain failed")
	}
	w.Flush()
	_, pkt, err := r.Next(buf)
	if err != nil {
		t.Fatal(err)
	}
	if h, _ := ctf.ParsePacketHeader(pkt); h.EventsDiscarded != w.Lost(0) {
		t.Fatalf("events_discarded %d, lost %d", h.EventsDiscarded, w.Lost(0))
	}
}

func TestOverwriteSnapshot(t *testing.T) {
	w, err := Create(Config{NumShards: 1, NumSub: 4, SubSize: 4096, Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	var b [12]byte
	const n = 50000
	for i := range uint64(n) {
		if !w.Write(0, 0, seqPayload(&b, 0, i)) {
			t.Fatalf("overwrite-mode write %d dropped", i)
		}
	}
	w.Flush()
	r := openReader(t, w)
	defer r.Close()
	c := newCollector(t)
	var seqs []uint64
	err = r.Snapshot(func(sh int, pkt []byte) error {
		h, _ := ctf.ParsePacketHeader(pkt)
		seqs = append(seqs, h.PacketSeqNum)
		c.packet(sh, pkt, false)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 4 {
		t.Fatalf("snapshot has %d packets, want 4 (%v)", len(seqs), seqs)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("packets %v not consecutive", seqs)
		}
	}
	if c.next[0] != n {
		t.Fatalf("newest record in snapshot is %d, want %d", c.next[0]-1, n-1)
	}
}

// TestSnapshotWhileWriting takes snapshots of an overwrite ring while
// writers run: every packet handed out must decode cleanly.
func TestSnapshotWhileWriting(t *testing.T) {
	w, err := Create(Config{NumShards: 1, NumSub: 2, SubSize: 4096, Overwrite: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := openReader(t, w)
	defer r.Close()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for k := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [12]byte
			for i := uint64(0); ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				w.Write(0, 0, seqPayload(&b, uint32(k), i))
			}
		}()
	}
	for w.shards[0].head.Load() < 8*4096 {
		runtime.Gosched()
	}
	got := 0
	for range 200 {
		c := newCollector(t)
		r.Snapshot(func(sh int, pkt []byte) error {
			got++
			c.packet(sh, pkt, false)
			return nil
		})
	}
	close(stop)
	wg.Wait()
	t.Logf("%d consistent packets in 200 snapshots", got)
	if got == 0 {
		t.Fatal("no snapshot held a packet")
	}
}

func TestOpenRefuses(t *testing.T) {
	// Unsealed memfd with a valid-looking size.
	fd, err := unix.MemfdCreate("x", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "x")
	unix.Ftruncate(fd, 1<<20)
	if _, err := Open(f); err == nil {
		t.Fatal("opened an unsealed memfd")
	} else {
		t.Log(err)
	}

	// A sealed memfd whose header is garbage.
	w, err := Create(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	binary.LittleEndian.PutUint32(w.m.Bytes()[offNumSub:], 3)
	if _, err := w.NewReader(); !errors.Is(err, ErrBadHeader) {
		t.Fatalf("Open(bad header) = %v, want ErrBadHeader", err)
	} else {
		t.Log(err)
	}
}

// TestRecoverInFlight simulates a writer that died between its reservation
// and its commit: the committed prefix is recovered on an exclusive shard,
// and dropped (counted) on a shared one, where it might hide a hole.
func TestRecoverInFlight(t *testing.T) {
	for _, shared := range []bool{false, true} {
		w, err := Create(Config{NumShards: 1, NumSub: 4, SubSize: 4096})
		if err != nil {
			t.Fatal(err)
		}
		if shared {
			w.MarkShared(0)
		}
		var b [12]byte
		const n = 400 // 2 full packets and part of a third
		for i := range uint64(n) {
			if !w.Write(0, 0, seqPayload(&b, 0, i)) {
				t.Fatal("write dropped")
			}
		}
		w.shards[0].head.Add(16) // reserved, never written nor committed
		r := openReader(t, w)
		c := newCollector(t)
		dropped, err := r.Recover(func(sh int, pkt []byte) error { c.packet(sh, pkt, true); return nil })
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case !shared && (dropped != 0 || c.n != n):
			t.Errorf("exclusive shard: recovered %d of %d, dropped %d packets", c.n, n, dropped)
		case shared && (dropped != 1 || c.n >= n || c.n == 0):
			t.Errorf("shared shard: recovered %d of %d, dropped %d packets, want the partial one dropped", c.n, n, dropped)
		}
		r.Close()
		w.Close()
	}
}

// twoShardRing returns a reader on a 2-shard ring of 4 KiB packets holding
// n sequence records (see collector), all flushed.
func twoShardRing(t *testing.T, n uint64) *Reader {
	t.Helper()
	w, err := Create(Config{NumShards: 2, NumSub: 4, SubSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	r := openReader(t, w)
	t.Cleanup(func() { r.Close() })
	var b [12]byte
	for i := range n {
		if !w.Write(int(i%2), 0, seqPayload(&b, uint32(i%2), i/2)) {
			t.Fatal("dropped")
		}
	}
	w.Flush()
	return r
}

// checkShardStreams checks that each shard's stream holds only packets of
// that shard, whose records add up to n in order.
func checkShardStreams(t *testing.T, streams [2][]byte, n int) {
	t.Helper()
	c := newCollector(t)
	for sh, data := range streams {
		if len(data) == 0 {
			t.Fatalf("shard %d got no packet", sh)
		}
		for len(data) > 0 {
			h, err := ctf.ParsePacketHeader(data[:4096])
			if err != nil || h.StreamInstanceID != uint64(sh) {
				t.Fatalf("shard %d's stream has a packet of shard %d (%v)", sh, h.StreamInstanceID, err)
			}
			c.packet(sh, data[:4096], true)
			data = data[4096:]
		}
	}
	if c.n != n {
		t.Fatalf("%d records, want %d", c.n, n)
	}
}

// WriteNext writes one packet at a time and says whose it is.
func TestWriteNext(t *testing.T) {
	const n = 600
	r := twoShardRing(t, n)
	var out bytes.Buffer
	var streams [2][]byte
	for {
		sh, m, err := r.WriteNext(&out)
		if err == ErrEmpty {
			break
		}
		if err != nil || m != 4096 {
			t.Fatalf("WriteNext: %d bytes, %v", m, err)
		}
		streams[sh] = append(streams[sh], out.Next(m)...)
	}
	checkShardStreams(t, streams, n)
}

func TestShardSize(t *testing.T) {
	if n := unsafe.Sizeof(wshard{}); n != 128 {
		t.Fatalf("wshard is %d bytes, want 128 (two cache lines of its own)", n)
	}
}

// WriteNextTo sends each packet to its own shard's writer.
func TestWriteNextTo(t *testing.T) {
	const n = 600
	r := twoShardRing(t, n)
	var files [2]bytes.Buffer
	for {
		sh, m, err := r.WriteNextTo(func(shard int) io.Writer { return &files[shard] })
		if err == ErrEmpty {
			break
		}
		if err != nil || m != 4096 {
			t.Fatalf("WriteNextTo: shard %d, %d bytes, %v", sh, m, err)
		}
	}
	checkShardStreams(t, [2][]byte{files[0].Bytes(), files[1].Bytes()}, n)
}
