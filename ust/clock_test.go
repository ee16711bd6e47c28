package ust

import (
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/ring"
)

// TestTimestampsNeverDecrease writes from many goroutines while GOMAXPROCS
// moves between 1 and 4x the shard count (so that Ps share shards and owners
// change threads) and a flusher closes packets under the writers, and
// checks that within each stream every timestamp (packet begin, events,
// packet end, in stream order) is at least the one before it (ring rule 1),
// whatever mix of unordered (owner) and ordered (shared, Flush) clock reads
// produced them. A compact timestamp that stepped back would show as a
// 2^27-tick jump past its packet's end.
func TestTimestampsNeverDecrease(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	const shards = 2
	tr := newTracer(t, Config{Ring: ring.Config{NumShards: shards, NumSub: 8, SubSize: 4096}})
	id, err := tr.Register(benchPoint.Desc())
	if err != nil {
		t.Fatal(err)
	}
	r := openReader(t, tr)
	events := tr.Events()

	var stop atomic.Bool
	var wg sync.WaitGroup
	var written atomic.Uint64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var p [29]byte
			copy(p[12:], benchString)
			for i := uint64(0); !stop.Load(); i++ {
				binary.LittleEndian.PutUint64(p[0:], i)
				binary.LittleEndian.PutUint32(p[8:], uint32(g))
				tr.write(id, p[:])
				written.Add(1)
				if i%512 == 0 {
					runtime.Gosched()
				}
			}
		}()
	}
	wg.Add(2)
	go func() { // GOMAXPROCS 1, 2, 3, 4, 8, 1, ...
		defer wg.Done()
		procs := []int{1, 2, 3, 4, 8}
		for i := 0; !stop.Load(); i++ {
			runtime.GOMAXPROCS(procs[i%len(procs)])
			time.Sleep(2 * time.Millisecond)
		}
	}()
	go func() {
		defer wg.Done()
		for !stop.Load() {
			tr.Flush()
			time.Sleep(300 * time.Microsecond)
		}
	}()

	last := make([]uint64, shards)
	var packets, evs int
	check := func() {
		var buf []byte
		for {
			sh, pkt, err := r.Next(buf)
			if err == ring.ErrEmpty {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			buf = pkt
			h, err := ctf.ParsePacketHeader(pkt)
			if err != nil {
				t.Fatal(err)
			}
			if h.TimestampBegin < last[sh] {
				t.Fatalf("shard %d packet %d begins at %d, before %d", sh, h.PacketSeqNum, h.TimestampBegin, last[sh])
			}
			last[sh] = h.TimestampBegin
			err = ctf.Events(pkt, events, func(e ctf.Event) bool {
				if e.Timestamp < last[sh] || e.Timestamp > h.TimestampEnd {
					t.Fatalf("shard %d packet %d: event at %d, previous %d, packet ends at %d", sh, h.PacketSeqNum, e.Timestamp, last[sh], h.TimestampEnd)
				}
				last[sh] = e.Timestamp
				evs++
				return true
			})
			if err != nil {
				t.Fatal(err)
			}
			if h.TimestampEnd < last[sh] {
				t.Fatalf("shard %d packet %d ends at %d, before %d", sh, h.PacketSeqNum, h.TimestampEnd, last[sh])
			}
			last[sh] = h.TimestampEnd
			packets++
		}
	}
	deadline := time.Now().Add(1500 * time.Millisecond)
	if testing.Short() {
		deadline = time.Now().Add(300 * time.Millisecond)
	}
	for time.Now().Before(deadline) {
		check()
		time.Sleep(100 * time.Microsecond)
	}
	stop.Store(true)
	wg.Wait()
	tr.Flush()
	check()
	t.Logf("%d events written, %d read in %d packets (the rest dropped: discard mode), TSC clock: %v", written.Load(), evs, packets, r.Info().TSC)
	if evs < 10000 || packets < 100 {
		t.Fatalf("only %d events in %d packets", evs, packets)
	}
}
