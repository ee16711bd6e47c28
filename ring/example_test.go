package ring_test

import (
	"fmt"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/ring"
)

// A writer and a reader of one ring. In real use the reader is another
// process that received the memfd over a unix socket (memfd.SendFile).
func Example() {
	w, err := ring.Create(ring.Config{NumShards: 1, NumSub: 2, SubSize: 4096})
	if err != nil {
		panic(err)
	}
	defer w.Close()
	ev := &catalog.Event{Provider: "app", Name: "hello", Fields: []catalog.Field{
		{Name: "n", Type: catalog.Type{Kind: catalog.Uint32}},
	}}
	for i := range 3 {
		w.Write(0, 0, catalog.AppendUint32(nil, uint32(i))) // shard 0, session id 0
	}
	w.Flush() // close the partly filled packet

	r, err := w.NewReader() // in another process: ring.Open on the received memfd
	if err != nil {
		panic(err)
	}
	defer r.Close()
	for {
		shard, pkt, err := r.Next(nil)
		if err == ring.ErrEmpty {
			break
		}
		ctf.Events(pkt, []*catalog.Event{ev}, func(e ctf.Event) bool {
			fmt.Println("shard", shard, ev.FullName(), e.Payload)
			return true
		})
	}
	// Output:
	// shard 0 app:hello [0 0 0 0]
	// shard 0 app:hello [1 0 0 0]
	// shard 0 app:hello [2 0 0 0]
}
