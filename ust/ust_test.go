package ust

import (
	"encoding/binary"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/internal/noescape"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/tracer"
)

// The benchmark event of the issue: uint64, uint32 and a 16-byte string,
// 29 payload bytes.
var benchDesc = catalog.Event{Provider: "bench", Name: "three", Fields: []catalog.Field{
	{Name: "a", Type: catalog.Type{Kind: catalog.Uint64}},
	{Name: "b", Type: catalog.Type{Kind: catalog.Uint32}},
	{Name: "s", Type: catalog.Type{Kind: catalog.String}},
}}

var benchPoint = func() *tracer.Point {
	p, err := tracer.Register(benchDesc)
	if err != nil {
		panic(err)
	}
	return p
}()

const benchString = "0123456789abcdef"

// emit is a hand-written call site: test the enable word, encode on the
// stack, dispatch.
func emit(a uint64, b uint32, s string) {
	if !benchPoint.Enabled() {
		return
	}
	var buf [64]byte
	binary.LittleEndian.PutUint64(buf[0:], a)
	binary.LittleEndian.PutUint32(buf[8:], b)
	n := 12 + copy(buf[12:63], s)
	buf[n] = 0
	// The root package's call sites do the same: the payload stays on the
	// stack (tracers must not keep it, see tracer.Tracer).
	benchPoint.Dispatch(noescape.Bytes(buf[:n+1]))
}

func newTracer(t testing.TB, cfg Config) *Tracer {
	t.Helper()
	tr, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	return tr
}

func openReader(t testing.TB, tr *Tracer) *ring.Reader {
	t.Helper()
	r, err := tr.Ring().NewReader()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// drain reads every complete packet and calls fn per event.
func drain(t testing.TB, r *ring.Reader, events []*catalog.Event, fn func(shard int, e ctf.Event)) {
	t.Helper()
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
		if err := ctf.Events(pkt, events, func(e ctf.Event) bool { fn(sh, e); return true }); err != nil {
			t.Fatal(err)
		}
	}
}

func TestTraceThroughPoint(t *testing.T) {
	tr := newTracer(t, Config{Ring: ring.Config{NumSub: 4, SubSize: 64 << 10}})
	id, err := tr.Attach(benchPoint)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := tr.Attach(benchPoint) // a second attachment: same session id
	if a != id {
		t.Fatalf("second Attach gave id %d, first %d", a, id)
	}
	r := openReader(t, tr)
	const n = 1000
	for i := range n {
		emit(uint64(i), uint32(i*3), benchString)
	}
	tr.Flush()
	got := 0
	drain(t, r, tr.Events(), func(_ int, e ctf.Event) {
		if e.ID != id {
			t.Fatalf("id %d, want %d", e.ID, id)
		}
		i := binary.LittleEndian.Uint64(e.Payload)
		if binary.LittleEndian.Uint32(e.Payload[8:]) != uint32(i*3) || string(e.Payload[12:]) != benchString+"\x00" {
			t.Fatalf("payload %x", e.Payload)
		}
		got++
	})
	if got != 2*n || tr.Lost() != 0 {
		t.Fatalf("read %d records, want %d (two attachments); lost %d", got, 2*n, tr.Lost())
	}
	if err := tr.Close(); err != nil {
		t.Fatal(err)
	}
	emit(1, 2, "after close") // detached: must not crash
	if benchPoint.Enabled() {
		t.Fatal("point still enabled after Close")
	}
}

func TestZeroAllocs(t *testing.T) {
	tr := newTracer(t, Config{Ring: ring.Config{Overwrite: true}})
	if _, err := tr.Attach(benchPoint); err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if n := testing.AllocsPerRun(10000, func() { emit(1, 2, benchString) }); n != 0 {
		t.Fatalf("%v allocations per event, want 0", n)
	}
}

// TestGOMAXPROCSGrows runs more Ps than shards: Ps share shards, which are
// marked shared, and no record is lost or torn.
func TestGOMAXPROCSGrows(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	tr := newTracer(t, Config{Ring: ring.Config{NumShards: 1, NumSub: 64, SubSize: 64 << 10}})
	desc := catalog.Event{Provider: "test", Name: "gomaxprocs", Fields: []catalog.Field{
		{Name: "g", Type: catalog.Type{Kind: catalog.Uint32}},
		{Name: "i", Type: catalog.Type{Kind: catalog.Uint64}},
	}}
	p, err := tracer.Register(desc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Attach(p); err != nil {
		t.Fatal(err)
	}
	r := openReader(t, tr)
	runtime.GOMAXPROCS(4) // more Ps than the one shard, at run time
	const gs, per = 8, 20000
	var wg sync.WaitGroup
	for g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b [12]byte
			for i := range uint64(per) {
				binary.LittleEndian.PutUint32(b[:], uint32(g))
				binary.LittleEndian.PutUint64(b[4:], i)
				p.Dispatch(b[:])
			}
		}()
	}
	wg.Wait()
	tr.Flush()
	next := make([]uint64, gs)
	got := 0
	drain(t, r, tr.Events(), func(_ int, e ctf.Event) {
		g := binary.LittleEndian.Uint32(e.Payload)
		i := binary.LittleEndian.Uint64(e.Payload[4:])
		if g >= gs || i != next[g] {
			t.Fatalf("goroutine %d: record %d, want %d", g, i, next[g])
		}
		next[g]++
		got++
	})
	if got != gs*per {
		t.Fatalf("read %d of %d (lost %d)", got, gs*per, tr.Lost())
	}
}

// TestConcurrentAttachEmitClose attaches, emits and closes tracers from many
// goroutines at once (run under -race).
func TestConcurrentAttachEmitClose(t *testing.T) {
	var wg sync.WaitGroup
	var stop atomic.Bool
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				emit(1, 2, benchString)
			}
		}()
	}
	for i := range 20 {
		tr, err := New(Config{Ring: ring.Config{NumSub: 2, SubSize: 4096, Overwrite: i%2 == 0}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Attach(benchPoint); err != nil {
			t.Fatal(err)
		}
		runtime.Gosched()
		if err := tr.Close(); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
}

func BenchmarkEmitRing(b *testing.B) {
	tr := newTracer(b, Config{Ring: ring.Config{Overwrite: true}})
	if _, err := tr.Attach(benchPoint); err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	b.ReportAllocs()
	i := uint64(0)
	for b.Loop() {
		emit(i, uint32(i), benchString)
		i++
	}
}

func BenchmarkEmitRingParallel(b *testing.B) {
	tr := newTracer(b, Config{Ring: ring.Config{Overwrite: true}})
	if _, err := tr.Attach(benchPoint); err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := uint64(0)
		for pb.Next() {
			emit(i, uint32(i), benchString)
			i++
		}
	})
}

// TestTraceByRecord uses the tracer as a plain tracer.Tracer: records of
// registered events are written, others ignored.
func TestTraceByRecord(t *testing.T) {
	tr := newTracer(t, Config{Ring: ring.Config{NumShards: 1, NumSub: 2, SubSize: 4096}})
	other := &catalog.Event{ID: 1 << 20, Provider: "x", Name: "y"}
	id, err := tr.Register(benchPoint.Desc())
	if err != nil {
		t.Fatal(err)
	}
	r := openReader(t, tr)
	payload := append([]byte{1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0}, benchString+"\x00"...)
	tr.Trace(catalog.Record{Event: benchPoint.Desc(), Payload: payload})
	tr.Trace(catalog.Record{Event: other, Payload: payload})
	tr.Trace(catalog.Record{})
	tr.Flush()
	got := 0
	drain(t, r, tr.Events(), func(_ int, e ctf.Event) {
		if e.ID != id || string(e.Payload) != string(payload) {
			t.Fatalf("event %d %x", e.ID, e.Payload)
		}
		got++
	})
	if got != 1 {
		t.Fatalf("%d records, want 1", got)
	}
}
