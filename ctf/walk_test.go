package ctf_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
)

// walkEvents returns what ctf.Events yields for pkt and its error.
func walkEvents(pkt []byte, events []*catalog.Event) ([]ctf.Event, error) {
	var evs []ctf.Event
	err := ctf.Events(pkt, events, func(e ctf.Event) bool { evs = append(evs, e); return true })
	return evs, err
}

// sameAsEvents checks that a Walker yields what ctf.Events does, with the
// same error.
func sameAsEvents(t *testing.T, pkt []byte, events []*catalog.Event, l *ctf.Layout) {
	t.Helper()
	want, werr := walkEvents(pkt, events)
	var w ctf.Walker
	var got []ctf.Event
	_, herr := w.Reset(pkt, l)
	for w.Next() {
		got = append(got, w.Event)
	}
	gerr := w.Err()
	if herr != nil && fmt.Sprint(herr) != fmt.Sprint(gerr) {
		t.Fatalf("Reset error %v, Err %v", herr, gerr)
	}
	if fmt.Sprint(gerr) != fmt.Sprint(werr) {
		t.Fatalf("Walker error %v, Events error %v", gerr, werr)
	}
	if len(got) != len(want) {
		t.Fatalf("Walker yields %d events, Events %d", len(got), len(want))
	}
	for i := range got {
		g, e := got[i], want[i]
		if g.ID != e.ID || g.Timestamp != e.Timestamp || g.Offset != e.Offset || string(g.Payload) != string(e.Payload) || cap(g.Payload) != cap(e.Payload) {
			t.Fatalf("event %d: Walker %+v, Events %+v", i, g, e)
		}
	}
}

// walkTable is an event table with the kinds of every shape: the bench
// event (fixed prefix, then a string), every kind, fixed structs and
// arrays, and an empty struct and array.
func walkTable() []*catalog.Event {
	u8 := catalog.Type{Kind: catalog.Uint8}
	fixed := &catalog.Event{Provider: "w", Name: "fixed", Fields: []catalog.Field{
		{Name: "a", Type: catalog.Type{Kind: catalog.Uint16}},
		{Name: "arr", Type: catalog.Type{Kind: catalog.Array, Len: 3, Elem: &u8}},
		{Name: "st", Type: catalog.Type{Kind: catalog.Struct, Fields: []catalog.Field{{Name: "x", Type: catalog.Type{Kind: catalog.Int32}}}}},
		{Name: "e", Type: catalog.Type{Kind: catalog.Enum, Elem: &u8}},
	}}
	odd := &catalog.Event{Provider: "w", Name: "odd", Fields: []catalog.Field{
		{Name: "empty", Type: catalog.Type{Kind: catalog.Struct}},
		{Name: "none", Type: catalog.Type{Kind: catalog.Array, Len: 0, Elem: &u8}},
		{Name: "s", Type: catalog.Type{Kind: catalog.String}},
		{Name: "b", Type: catalog.Type{Kind: catalog.Bytes}},
		{Name: "t", Type: catalog.Type{Kind: catalog.Uint64}},
		{Name: "bad", Type: catalog.Type{Kind: catalog.Enum}},
	}}
	strs := &catalog.Event{Provider: "w", Name: "strings", Fields: []catalog.Field{
		{Name: "s1", Type: catalog.Type{Kind: catalog.String}},
		{Name: "s2", Type: catalog.Type{Kind: catalog.String}},
	}}
	events := make([]*catalog.Event, 40)
	events[0], events[1], events[2], events[4], events[35] = three, fixed, strs, odd, allKinds
	return events
}

// randomPacket builds a packet of random events of the table, with random
// damage when damage is set.
func randomPacket(r *rand.Rand, events []*catalog.Event, damage bool) []byte {
	pkt := make([]byte, ctf.PacketHeaderSize)
	ts := uint64(r.IntN(1 << 40))
	begin := ts
	ids := []uint32{0, 1, 2, 35}
	for range r.IntN(20) {
		id := ids[r.IntN(len(ids))]
		ts += uint64(r.IntN(1 << 28))
		var hdr [ctf.ExtendedHeaderSize]byte
		if r.IntN(4) == 0 {
			ctf.PutExtendedHeader(hdr[:], id, ts)
			pkt = append(pkt, hdr[:]...)
		} else {
			ctf.PutCompactHeader(hdr[:], id, ts)
			pkt = append(pkt, hdr[:ctf.CompactHeaderSize]...)
		}
		switch id {
		case 0:
			pkt = catalog.AppendUint64(pkt, r.Uint64())
			pkt = catalog.AppendUint32(pkt, r.Uint32())
			pkt = catalog.AppendString(pkt, "0123456789abcdef"[:r.IntN(17)])
		case 1:
			pkt = append(pkt, make([]byte, 2+3+4+1)...)
		case 2:
			pkt = catalog.AppendString(pkt, "x")
			pkt = catalog.AppendString(pkt, "")
		case 35:
			v := allValues{s: "x", seq: []uint32{1, 2}, tags: []string{"t"}}
			pkt = append(pkt, v.encode()...)
		}
	}
	if damage {
		for range 1 + r.IntN(3) {
			if len(pkt) > ctf.PacketHeaderSize {
				pkt[ctf.PacketHeaderSize+r.IntN(len(pkt)-ctf.PacketHeaderSize)] = byte(r.Uint32())
			}
		}
		if r.IntN(3) == 0 {
			pkt = pkt[:ctf.PacketHeaderSize+r.IntN(len(pkt)-ctf.PacketHeaderSize+1)]
		}
	}
	h := ctf.PacketHeader{TimestampBegin: begin, TimestampEnd: ts, ContentSize: uint64(len(pkt)) * 8, PacketSize: uint64(len(pkt)) * 8}
	h.Put(pkt)
	return pkt
}

func TestWalkerMatchesEvents(t *testing.T) {
	events := walkTable()
	l := ctf.NewLayout(events)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 20000 {
		pkt := randomPacket(r, events, i%2 == 1)
		sameAsEvents(t, pkt, events, l)
	}
	// The odd event: an enum without a base type is always corrupt.
	pkt := make([]byte, ctf.PacketHeaderSize+ctf.CompactHeaderSize+8)
	ctf.PutCompactHeader(pkt[ctf.PacketHeaderSize:], 4, 0)
	h := ctf.PacketHeader{ContentSize: uint64(len(pkt)) * 8, PacketSize: uint64(len(pkt)) * 8}
	h.Put(pkt)
	sameAsEvents(t, pkt, events, l)
	sameAsEvents(t, pkt[:10], events, l) // a bad header
}

// FuzzWalker feeds arbitrary packets to a Walker and to ctf.Events: the
// same events and the same error, and never a panic.
func FuzzWalker(f *testing.F) {
	events := walkTable()
	l := ctf.NewLayout(events)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range 8 {
		f.Add(randomPacket(r, events, i%2 == 1))
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		sameAsEvents(t, pkt, events, l)
	})
}

func BenchmarkWalker(b *testing.B) {
	events := walkTable()
	l := ctf.NewLayout(events)
	pkt := make([]byte, ctf.PacketHeaderSize)
	n := 0
	for len(pkt) < 1<<20 {
		var hdr [ctf.CompactHeaderSize]byte
		ctf.PutCompactHeader(hdr[:], 0, uint64(n)*100)
		pkt = append(pkt, hdr[:]...)
		pkt = catalog.AppendUint64(pkt, uint64(n))
		pkt = catalog.AppendUint32(pkt, uint32(n))
		pkt = catalog.AppendString(pkt, "0123456789abcdef")
		n++
	}
	h := ctf.PacketHeader{TimestampEnd: uint64(n) * 100, ContentSize: uint64(len(pkt)) * 8, PacketSize: uint64(len(pkt)) * 8}
	h.Put(pkt)
	b.Run("Walker", func(b *testing.B) {
		var w ctf.Walker
		for b.Loop() {
			w.Reset(pkt, l)
			for w.Next() {
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	})
	b.Run("Events", func(b *testing.B) {
		for b.Loop() {
			ctf.Events(pkt, events, func(ctf.Event) bool { return true })
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/event")
	})
}
