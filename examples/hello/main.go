// Command hello is the smallest instrumented program: it defines two events,
// attaches an in-process tracer that prints every event as text, and fires a
// few events. Run it with
//
//	go run ./examples/hello
package main

import (
	"os"
	"sync"
	"time"

	"github.com/usertrace/usertrace"
)

// The schema of an event is a Go struct; field names become snake_case.
type RequestDone struct {
	Method Method
	Path   string
	Status uint16
	Bytes  uint64
	Took   time.Duration
}

// Method is an enum: its values have names in the trace.
type Method uint8

const (
	GET Method = iota
	POST
)

func (Method) TraceEnum() []usertrace.EnumLabel {
	return []usertrace.EnumLabel{{Value: int64(GET), Label: "GET"}, {Value: int64(POST), Label: "POST"}}
}

type CacheStats struct {
	Hits, Misses uint32
	Ratios       [2]float32
}

var (
	requestDone = usertrace.NewEvent[RequestDone]("http", "request_done")
	cacheStats  = usertrace.NewEvent[CacheStats]("cache", "stats", usertrace.WithLevel(usertrace.LevelDebug))
)

func main() {
	// An in-process tracer: a function called for every event it is attached
	// to. Records are valid only during the call, so it formats right away.
	var mu sync.Mutex
	var line []byte
	print := usertrace.TracerFunc(func(r usertrace.Record) {
		mu.Lock()
		defer mu.Unlock()
		line = append(r.AppendText(line[:0]), '\n')
		os.Stdout.Write(line)
	})

	// Nothing of ours is attached yet: run alone, these cost an atomic load and a
	// branch each, and the guarded one does not even build its value. Under
	// `usertrace record` the recording session is attached already, and
	// these two are in the trace.
	requestDone.Emit(RequestDone{Path: "/not-traced"})
	if cacheStats.Enabled() {
		cacheStats.Emit(CacheStats{Hits: 1})
	}

	a1, _ := requestDone.Attach(print)
	a2, _ := cacheStats.Attach(print)
	defer a1.Detach()
	defer a2.Detach()

	paths := []string{"/", "/login", "/static/app.js"}
	for i, p := range paths {
		requestDone.Emit(RequestDone{
			Method: Method(i % 2),
			Path:   p,
			Status: 200,
			Bytes:  uint64(512 * (i + 1)),
			Took:   time.Duration(i+1) * 1500 * time.Microsecond,
		})
	}
	if cacheStats.Enabled() {
		cacheStats.Emit(CacheStats{Hits: 9, Misses: 1, Ratios: [2]float32{0.9, 0.1}})
	}
}
