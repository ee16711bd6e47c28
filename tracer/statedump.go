package tracer

import (
	"slices"
	"sync"

	"github.com/usertrace/usertrace/catalog"
)

// A statedump is the application describing its current state (open
// connections, loaded plugins, ...) as events, on request of one tracer that
// has just attached and missed how that state came to be. The events of a
// statedump go to the requesting tracer only, whatever the enable words say.

// Dump is one statedump in progress, addressed to one tracer.
type Dump struct {
	t Tracer
}

// Emit delivers an encoded payload for point p to the dump's tracer only.
func (d *Dump) Emit(p *Point, payload []byte) {
	d.t.Trace(catalog.Record{Event: p.desc, Payload: payload})
}

var dumpers struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(*Dump)
}

// OnStatedump registers fn to describe the application's state when a
// tracer asks for a statedump. It returns a function that unregisters fn.
func OnStatedump(fn func(*Dump)) (unregister func()) {
	dumpers.mu.Lock()
	defer dumpers.mu.Unlock()
	if dumpers.fns == nil {
		dumpers.fns = make(map[int]func(*Dump))
	}
	id := dumpers.next
	dumpers.next++
	dumpers.fns[id] = fn
	return func() {
		dumpers.mu.Lock()
		delete(dumpers.fns, id)
		dumpers.mu.Unlock()
	}
}

// Statedump runs every registered statedump function, in registration
// order, and delivers what they emit to t alone. It returns when all of them
// have returned.
func Statedump(t Tracer) {
	dumpers.mu.Lock()
	ids := make([]int, 0, len(dumpers.fns))
	for id := range dumpers.fns {
		ids = append(ids, id)
	}
	fns := make([]func(*Dump), 0, len(ids))
	slices.Sort(ids)
	for _, id := range ids {
		fns = append(fns, dumpers.fns[id])
	}
	dumpers.mu.Unlock()
	d := &Dump{t: t}
	for _, fn := range fns {
		fn(d)
	}
}
