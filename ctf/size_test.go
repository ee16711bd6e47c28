package ctf_test

import (
	"testing"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/ring"
)

// TestBytesPerEvent measures the on-disk size of the benchmark event (29
// payload bytes) with the default ring geometry: full packets, header and
// padding included. The bar is 34 (LTTng-UST's figure).
func TestBytesPerEvent(t *testing.T) {
	w, err := ring.Create(ring.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	r := openReader(t, w)
	var p []byte
	p = catalog.AppendUint64(p, 1)
	p = catalog.AppendUint32(p, 2)
	p = catalog.AppendString(p, "0123456789abcdef")
	const n = 50000
	var disk, events int
	var buf []byte
	events0 := []*catalog.Event{three}
	for i := range n {
		if !w.Write(0, 0, p) {
			t.Fatalf("write %d dropped", i)
		}
		for {
			_, pkt, err := r.Next(buf)
			if err == ring.ErrEmpty {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			buf = pkt
			disk += len(pkt)
			ctf.Events(pkt, events0, func(ctf.Event) bool { events++; return true })
		}
	}
	per := float64(disk) / float64(events)
	t.Logf("%d events in %d bytes of full packets: %.2f bytes/event", events, disk, per)
	if events == 0 || per > 34 {
		t.Fatalf("%.2f bytes per event, want <= 34", per)
	}
}

func TestMetadataRejectsInexpressible(t *testing.T) {
	e := &catalog.Event{Provider: "p", Name: "n", Fields: []catalog.Field{{Name: "f", Type: catalog.Type{
		Kind: catalog.Sequence, Elem: &catalog.Type{Kind: catalog.Bytes}}}}}
	if _, err := ctf.Metadata(ctf.Trace{Events: []*catalog.Event{e}}); err == nil {
		t.Fatal("a sequence of bytes was described")
	}
}
