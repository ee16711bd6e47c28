package ring

import (
	"encoding/binary"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/usertrace/usertrace/ctf"
)

// FuzzReader corrupts a ring (the input is a list of patches: uint32 offset,
// one length byte, that many bytes) and, at the same time, scribbles random
// bytes into it from another goroutine, while a reader consumes it with
// Next, Recover and Snapshot and decodes every packet it hands out. The
// reader must never panic, hang or read outside the mapping.
func FuzzReader(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{0x80, 0x10, 0, 0, 8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}) // a commit counter
	f.Add([]byte{0, 0x20, 0, 0, 4, 0xde, 0xad, 0xbe, 0xef})                            // a packet magic
	f.Fuzz(func(t *testing.T, ops []byte) {
		overwrite := len(ops) > 0 && ops[0]&1 != 0
		w, err := Create(Config{NumShards: 2, NumSub: 2, SubSize: 4096, Overwrite: overwrite})
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		var b [12]byte
		for i := range uint64(700) {
			w.Write(int(i%2), uint32(i%41), seqPayload(&b, 0, i))
		}
		mem := w.m.Bytes()
		patch := func(ops []byte) {
			for len(ops) >= 5 {
				off := int(binary.LittleEndian.Uint32(ops) % uint32(len(mem)))
				n := int(ops[4])
				ops = ops[5:]
				n = min(n, len(ops), len(mem)-off)
				copy(mem[off:off+n], ops[:n])
				ops = ops[n:]
			}
		}
		patch(ops)
		r, err := w.NewReader()
		if err != nil {
			return // a corrupt header is refused (and file closed): fine
		}
		defer r.Close()
		// Concurrent random writes into control blocks and packets.
		seed := uint64(len(ops))
		for _, c := range ops {
			seed = seed*31 + uint64(c)
		}
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				off := headerArea + rng.IntN(len(mem)-headerArea-8)
				binary.LittleEndian.PutUint64(mem[off:], rng.Uint64()>>(rng.IntN(4)*16))
			}
		}()
		decode := func(pkt []byte) {
			ctf.Events(pkt, seqEvents, func(ctf.Event) bool { return true })
		}
		var buf []byte
		for range 50 {
			_, pkt, err := r.Next(buf)
			if err == nil {
				buf = pkt
				decode(pkt)
			}
		}
		for range 10 {
			r.WriteNext(io.Discard)
		}
		r.Snapshot(func(_ int, pkt []byte) error { decode(pkt); return nil })
		r.Recover(func(_ int, pkt []byte) error { decode(pkt); return nil })
		close(stop)
		wg.Wait()
	})
}
