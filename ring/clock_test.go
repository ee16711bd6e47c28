package ring

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/internal/rt"
)

// TestVersion1Ring: a reader of version 2 reads a version 1 ring (96-byte
// header, ns timestamps).
func TestVersion1Ring(t *testing.T) {
	w, err := Create(Config{NumShards: 1, NumSub: 2, SubSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	mem := w.m.Bytes()
	le := binary.LittleEndian
	le.PutUint32(mem[offVersion:], 1)
	le.PutUint32(mem[offHeaderSize:], headerSizeV1)
	le.PutUint32(mem[offFlags:], 0)
	clear(mem[headerSizeV1:HeaderSize])
	r := openReader(t, w)
	defer r.Close()
	i := r.Info()
	if i.TSC || i.TicksPerSecond != 1e9 || i.CreatedTicks != uint64(i.CreatedMono) {
		t.Fatalf("version 1 info %+v", i)
	}
	if c := i.Clock(); c != ctf.NSClock(w.ClockOffset()) {
		t.Fatalf("clock %+v, want %+v", c, ctf.NSClock(w.ClockOffset()))
	}
	if got := r.hdr.now(); got < uint64(i.CreatedMono) || got > uint64(rt.Nanotime()) {
		t.Fatalf("a version 1 ring's clock reads %d, not CLOCK_MONOTONIC", got)
	}
	le.PutUint32(mem[offVersion:], 3)
	if _, err := parseHeader(mem[:HeaderSize], len(mem)); err == nil {
		t.Fatal("version 3 accepted")
	}
	le.PutUint32(mem[offVersion:], 2)
	le.PutUint32(mem[offHeaderSize:], HeaderSize)
	le.PutUint32(mem[offFlags:], FlagTSC)
	if _, err := parseHeader(mem[:HeaderSize], len(mem)); err == nil {
		t.Fatal("tick_freq 0 accepted")
	}
}

// TestInfoClock checks the rate and offset Clock derives from the
// creation stamp and a later one.
func TestInfoClock(t *testing.T) {
	const f = 2_596_144_000
	i := Info{TSC: true, CreatedTicks: 123_456_789_012_345, CreatedMono: 7_000_000_123, ClockOffset: 1_795_000_000_987_654_321, TicksPerSecond: f + 2000}
	wall0 := i.CreatedMono + i.ClockOffset
	at := func(sec int64, mono, wall int64) rt.Stamp {
		return rt.Stamp{Ticks: i.CreatedTicks + uint64(sec)*f, Mono: i.CreatedMono + mono, Wall: wall0 + wall}
	}
	for _, c := range []struct {
		name string
		now  rt.Stamp
		want uint64
	}{
		{"an hour", at(3600, 3600e9, 3600e9), f},
		{"half a second: the writer's rate", at(0, 5e8, 5e8), f + 2000},
		{"another time namespace: the wall clock", at(10, 10e9+86400e9, 10e9), f},
		{"both clocks stepped: the writer's rate", at(10, 1e9, -5e9), f + 2000},
	} {
		if c.name == "half a second: the writer's rate" {
			c.now.Ticks = i.CreatedTicks + f/2
		}
		clk := i.clockAt(c.now)
		if clk.Freq != c.want || !clk.TSC || clk.Offset >= clk.Freq || clk.OffsetS < 0 {
			t.Errorf("%s: clock %+v, want freq %d", c.name, clk, c.want)
			continue
		}
		if d := clk.Wall(i.CreatedTicks) - wall0; d < -1 || d > 1 {
			t.Errorf("%s: creation maps %d ns off", c.name, d)
		}
		if c.want == f {
			if d := clk.Wall(c.now.Ticks) - c.now.Wall; c.name == "an hour" && (d < -1 || d > 1) {
				t.Errorf("%s: now maps %d ns off", c.name, d)
			}
		}
	}
	if c := (Info{ClockOffset: -5}).Clock(); c.Freq != 1e9 || c.Wall(10) != 5 {
		t.Errorf("ns clock %+v", c)
	}
}

// TestOrderWithOwner mixes, on one shard, an owner (WriteOwned: unordered
// clock), writers of Write (ordered) and Flush, and checks that every
// timestamp in the stream (begin, events, end) is at least the one before.
func TestOrderWithOwner(t *testing.T) {
	w, err := Create(Config{NumShards: 1, NumSub: 8, SubSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := openReader(t, w)
	defer r.Close()
	var stop atomic.Bool
	var wg sync.WaitGroup
	for k := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [12]byte
			for i := uint64(0); !stop.Load(); i++ {
				if k == 0 {
					w.WriteOwned(0, 0, seqPayload(&b, 0, i))
				} else {
					w.Write(0, 0, seqPayload(&b, uint32(k), i))
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			w.Flush()
			time.Sleep(50 * time.Microsecond)
		}
	}()
	var last uint64
	n := 0
	buf := make([]byte, 4096)
	take := func() {
		for {
			_, pkt, err := r.Next(buf)
			if err == ErrEmpty {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			h, _ := ctf.ParsePacketHeader(pkt)
			if h.TimestampBegin < last {
				t.Fatalf("packet %d begins at %d, before %d", h.PacketSeqNum, h.TimestampBegin, last)
			}
			last = h.TimestampBegin
			if err := ctf.Events(pkt, seqEvents, func(e ctf.Event) bool {
				if e.Timestamp < last || e.Timestamp > h.TimestampEnd {
					t.Fatalf("packet %d: event at %d after %d, packet ends %d", h.PacketSeqNum, e.Timestamp, last, h.TimestampEnd)
				}
				last = e.Timestamp
				n++
				return true
			}); err != nil {
				t.Fatal(err)
			}
			last = h.TimestampEnd
		}
	}
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
		take()
	}
	stop.Store(true)
	wg.Wait()
	w.Flush()
	take()
	if n < 10000 {
		t.Fatalf("only %d events", n)
	}
	t.Logf("%d events", n)
}
