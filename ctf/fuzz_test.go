package ctf_test

import (
	"testing"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
)

// FuzzEvents feeds arbitrary packets to the packet parser with an event
// table that has every kind: it must never panic or loop without end.
func FuzzEvents(f *testing.F) {
	var pkt [ctf.PacketHeaderSize + 64]byte
	h := ctf.PacketHeader{ContentSize: uint64(len(pkt)) * 8, PacketSize: uint64(len(pkt)) * 8}
	h.Put(pkt[:])
	f.Add(pkt[:])
	v := allValues{s: "x", seq: []uint32{1, 2}, tags: []string{"t"}}
	p := v.encode()
	full := make([]byte, ctf.PacketHeaderSize+ctf.ExtendedHeaderSize+len(p))
	h = ctf.PacketHeader{ContentSize: uint64(len(full)) * 8, PacketSize: uint64(len(full)) * 8}
	h.Put(full)
	ctf.PutExtendedHeader(full[ctf.PacketHeaderSize:], 35, 7)
	copy(full[ctf.PacketHeaderSize+ctf.ExtendedHeaderSize:], p)
	f.Add(full)
	events := make([]*catalog.Event, 36)
	events[0], events[35] = three, allKinds
	f.Fuzz(func(t *testing.T, pkt []byte) {
		n := 0
		ctf.Events(pkt, events, func(e ctf.Event) bool {
			if e.Offset < ctf.PacketHeaderSize || e.Offset >= len(pkt) {
				t.Fatalf("event offset %d out of the packet", e.Offset)
			}
			n++
			return true
		})
	})
}
