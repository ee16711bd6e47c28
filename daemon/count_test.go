package daemon

import (
	"testing"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/ring"
)

var (
	countThree = &catalog.Event{Provider: "t", Name: "three", Fields: []catalog.Field{
		{Name: "a", Type: catalog.Type{Kind: catalog.Uint64}},
		{Name: "b", Type: catalog.Type{Kind: catalog.Uint32}},
		{Name: "s", Type: catalog.Type{Kind: catalog.String}},
	}}
	countOne = &catalog.Event{Provider: "t", Name: "one", Fields: []catalog.Field{
		{Name: "a", Type: catalog.Type{Kind: catalog.Uint32}},
	}}
)

// countPacket is a packet of k events with session-local id id (0: three
// fields, 1: one field).
func countPacket(id uint32, k int) []byte {
	pkt := make([]byte, ctf.PacketHeaderSize)
	for i := range k {
		var hdr [ctf.CompactHeaderSize]byte
		ctf.PutCompactHeader(hdr[:], id, uint64(i)*100)
		pkt = append(pkt, hdr[:]...)
		if id == 0 {
			pkt = catalog.AppendUint64(pkt, uint64(i))
			pkt = catalog.AppendUint32(pkt, uint32(i))
			pkt = catalog.AppendString(pkt, "0123456789abcdef")
		} else {
			pkt = catalog.AppendUint32(pkt, uint32(i))
		}
	}
	h := ctf.PacketHeader{TimestampEnd: uint64(k) * 100, ContentSize: uint64(len(pkt)) * 8, PacketSize: uint64(len(pkt)) * 8}
	h.Put(pkt)
	return pkt
}

// TestCountDeferred: packets written while the ring fills fast are counted
// later from the stream files, a batch at a time; a packet with an id the
// agent has not reported yet waits for the final count, which counts it
// once the id is known; no packet is counted twice or forgotten.
func TestCountDeferred(t *testing.T) {
	dir, err := ctf.CreateDir(t.TempDir(), "/* CTF 1.8 */")
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	st := &stream{dir: dir, info: ring.Info{Geometry: ring.Geometry{SubSize: 1 << 16}}, offsets: map[int]int64{}}
	st.events = []*catalog.Event{countThree} // id 1 not reported yet

	// While busy: 10 packets of id 0 on two shards, and 2 of id 1 among them.
	st.busy = true
	var known, unknown uint64
	for i := range 12 {
		id, k := uint32(0), i+1
		if i == 3 || i == 8 {
			id = 1
		}
		if err := st.write(i%2, countPacket(id, k)); err != nil {
			t.Fatal(err)
		}
		if id == 0 {
			known += uint64(k)
		} else {
			unknown += uint64(k)
		}
	}
	if n := st.nevents.Load(); n != 0 || len(st.recount) != 12 {
		t.Fatalf("while busy: %d events counted, %d packets deferred; want 0 and 12", n, len(st.recount))
	}

	// Batches of 5: after the first, 5 packets are done (one of them with
	// the unknown id, which now waits for the end).
	st.countDeferred(5, false)
	if len(st.recount) != 7 || len(st.countAtEnd) != 1 || st.nevents.Load() != 1+2+3+5 {
		t.Fatalf("after one batch: %d deferred, %d for the end, %d events; want 7, 1, 11",
			len(st.recount), len(st.countAtEnd), st.nevents.Load())
	}
	for len(st.recount) > 0 {
		st.countDeferred(5, false)
	}
	if st.nevents.Load() != known || len(st.countAtEnd) != 2 {
		t.Fatalf("all batches: %d events, %d for the end; want %d, 2", st.nevents.Load(), len(st.countAtEnd), known)
	}

	// Not busy: written and counted at once.
	st.busy = false
	if err := st.write(0, countPacket(0, 7)); err != nil {
		t.Fatal(err)
	}
	known += 7
	if st.nevents.Load() != known || len(st.recount) != 0 {
		t.Fatalf("not busy: %d events, %d deferred; want %d, 0", st.nevents.Load(), len(st.recount), known)
	}

	// The agent reports id 1; the final count takes the packets that waited.
	st.mu.Lock()
	st.events = append(st.events, countOne)
	st.idVersion++
	st.mu.Unlock()
	st.countDeferred(0, true)
	if st.nevents.Load() != known+unknown || len(st.recount)+len(st.countAtEnd) != 0 {
		t.Fatalf("final: %d events, %d+%d left; want %d, 0", st.nevents.Load(), len(st.recount), len(st.countAtEnd), known+unknown)
	}
}
