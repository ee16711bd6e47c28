package tracer_test

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/enable"
	"github.com/usertrace/usertrace/tracer"
)

var seqEvent = catalog.Event{
	Provider: "tracer_test",
	Name:     "seq",
	Fields: []catalog.Field{
		{Name: "goroutine", Type: catalog.Type{Kind: catalog.Uint32}},
		{Name: "seq", Type: catalog.Type{Kind: catalog.Uint32}},
	},
}

func mustRegister(t testing.TB, e catalog.Event) *tracer.Point {
	t.Helper()
	p, err := tracer.Register(e)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fire is what a call site does: test the enable word, then dispatch.
func fire(p *tracer.Point, g, seq uint32) {
	if p.Enabled() {
		var buf [8]byte
		binary.LittleEndian.PutUint32(buf[0:], g)
		binary.LittleEndian.PutUint32(buf[4:], seq)
		p.Dispatch(buf[:])
	}
}

// collector is one attachment's view: every (goroutine, seq) it received.
type collector struct {
	mu   sync.Mutex
	seen map[uint64]int
}

func (c *collector) Trace(r catalog.Record) {
	k := binary.LittleEndian.Uint64(r.Payload)
	c.mu.Lock()
	c.seen[k]++
	c.mu.Unlock()
}

// TestConcurrentAttachDetachEmit is the test libside's C implementation
// fails: many goroutines attach, emit and detach on one event at once. Each
// attachment must see every event its own goroutine fired while it was
// attached, exactly once, and never any event twice; at the end the enable
// word is back to zero. Run it under -race.
func TestConcurrentAttachDetachEmit(t *testing.T) {
	p := mustRegister(t, seqEvent)
	workers := 2 * runtime.GOMAXPROCS(0)
	if workers < 8 {
		workers = 8
	}
	const rounds, perRound = 2000, 3
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var seq atomic.Uint32 // unique across all goroutines
	for g := 0; g < workers; g++ {
		wg.Add(1)
		go func(g uint32) {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				c := &collector{seen: make(map[uint64]int)}
				a, err := p.Attach(c)
				if err != nil {
					errs <- err
					return
				}
				mine := make([]uint32, 0, perRound)
				for i := 0; i < perRound; i++ {
					s := seq.Add(1)
					mine = append(mine, s)
					fire(p, g, s)
				}
				a.Detach()
				c.mu.Lock()
				for _, s := range mine {
					k := uint64(g) | uint64(s)<<32
					if n := c.seen[k]; n != 1 {
						errs <- fmt.Errorf("goroutine %d round %d: own event %d seen %d times", g, r, s, n)
						c.mu.Unlock()
						return
					}
				}
				for k, n := range c.seen {
					if n != 1 {
						errs <- fmt.Errorf("goroutine %d round %d: event %x seen %d times", g, r, k, n)
						c.mu.Unlock()
						return
					}
				}
				c.mu.Unlock()
			}
		}(uint32(g))
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if w := p.Word().Load(); w != 0 || p.Attached() != 0 {
		t.Fatalf("after all detached: word %#x, %d attachments", w, p.Attached())
	}
}

// TestDetachAfterEmitStops: nothing reaches a tracer after Detach returns.
func TestDetachAfterEmitStops(t *testing.T) {
	e := seqEvent
	e.Name = "detach_stops"
	p := mustRegister(t, e)
	var n atomic.Int64
	a, _ := p.Attach(tracer.Func(func(catalog.Record) { n.Add(1) }))
	fire(p, 0, 1)
	a.Detach()
	fire(p, 0, 2)
	if n.Load() != 1 {
		t.Fatalf("tracer saw %d events, want 1", n.Load())
	}
}

func TestGatedAttachment(t *testing.T) {
	e := seqEvent
	e.Name = "gated"
	p := mustRegister(t, e)
	bit, err := enable.ClaimBit("gated-test")
	if err != nil {
		t.Fatal(err)
	}
	defer bit.Release()
	var gated, counted atomic.Int64
	ga, err := p.AttachGated(tracer.Func(func(catalog.Record) { gated.Add(1) }), bit.Mask())
	if err != nil {
		t.Fatal(err)
	}
	defer ga.Detach()
	fire(p, 0, 1) // word is 0: nothing runs
	if p.Enabled() || gated.Load() != 0 {
		t.Fatal("a gated attachment enabled the event by itself")
	}
	bit.Set(p.Word())
	fire(p, 0, 2)
	ca, _ := p.Attach(tracer.Func(func(catalog.Record) { counted.Add(1) }))
	fire(p, 0, 3)
	bit.Clear(p.Word())
	fire(p, 0, 4) // only the counted tracer
	ca.Detach()
	if gated.Load() != 2 || counted.Load() != 2 {
		t.Fatalf("gated saw %d (want 2), counted saw %d (want 2)", gated.Load(), counted.Load())
	}
	if _, err := p.AttachGated(tracer.Func(func(catalog.Record) {}), 1); err == nil {
		t.Fatal("gating on count bits accepted")
	}
}

// TestSubscribeExactlyOnce: a subscriber is told of every point exactly
// once, including points defined while it subscribes.
func TestSubscribeExactlyOnce(t *testing.T) {
	const n = 200
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < n; i++ {
			e := seqEvent
			e.Name = fmt.Sprintf("sub_%d", i)
			mustRegister(t, e)
		}
	}()
	var mu sync.Mutex
	seen := map[string]int{}
	sub := tracer.Subscribe(func(p *tracer.Point) {
		mu.Lock()
		seen[p.Desc().FullName()]++
		mu.Unlock()
	})
	wg.Wait()
	sub.Cancel()
	e := seqEvent
	e.Name = "after_cancel"
	mustRegister(t, e)
	mu.Lock()
	defer mu.Unlock()
	for _, p := range tracer.Points() {
		name := p.Desc().FullName()
		if name == "tracer_test:after_cancel" {
			if seen[name] != 0 {
				t.Errorf("told of %s after Cancel", name)
			}
			continue
		}
		if seen[name] != 1 {
			t.Errorf("%s seen %d times, want 1", name, seen[name])
		}
	}
}

func TestRegisterAssignsMatchingIDs(t *testing.T) {
	e := seqEvent
	e.Name = "ids"
	p := mustRegister(t, e)
	if p.Desc().ID != uint32(p.ID()) {
		t.Fatalf("description id %d, enable id %d", p.Desc().ID, p.ID())
	}
	w, ok := enable.Lookup(p.ID())
	if !ok || w.Addr() != p.Word().Addr() {
		t.Fatal("enable.Lookup does not find the point's word")
	}
	q, ok := tracer.Lookup(p.ID())
	if !ok || q != p {
		t.Fatal("tracer.Lookup does not find the point")
	}
	if q, ok := tracer.LookupName("tracer_test", "ids"); !ok || q != p {
		t.Fatal("tracer.LookupName does not find the point")
	}
}

func TestStatedumpGoesToOneTracer(t *testing.T) {
	e := seqEvent
	e.Name = "statedump"
	p := mustRegister(t, e)
	var attached atomic.Int64
	a, _ := p.Attach(tracer.Func(func(catalog.Record) { attached.Add(1) }))
	defer a.Detach()
	unregister := tracer.OnStatedump(func(d *tracer.Dump) {
		for i := 0; i < 3; i++ {
			d.Emit(p, make([]byte, 8))
		}
	})
	defer unregister()
	var asked atomic.Int64
	tracer.Statedump(tracer.Func(func(r catalog.Record) {
		if r.Event.Name == "statedump" {
			asked.Add(1)
		}
	}))
	if asked.Load() != 3 || attached.Load() != 0 {
		t.Fatalf("requesting tracer got %d (want 3), attached tracer got %d (want 0)", asked.Load(), attached.Load())
	}
}

func TestRegisterRejects(t *testing.T) {
	bad := seqEvent
	bad.Name = "bad"
	bad.Fields = []catalog.Field{{Name: "x", Type: catalog.Type{Kind: catalog.Array, Elem: &catalog.Type{Kind: catalog.String}, Len: 2}}}
	_, err := tracer.Register(bad)
	if err == nil || !strings.Contains(err.Error(), "arrays hold scalars") {
		t.Fatalf("got %v", err)
	}
}
