// Package inlinecheck holds typical call sites of usertrace events. The root
// package's TestInlined compiles it with -gcflags=-m and fails unless the
// compiler reports every Emit and Enabled call here as inlined, which is what
// keeps a disabled tracepoint at one atomic load and a branch.
package inlinecheck

import (
	"time"

	"github.com/usertrace/usertrace"
)

type request struct {
	Method string
	Status uint16
	Bytes  uint64
	Took   time.Duration
}

type small struct{ N uint32 }

var (
	requestDone = usertrace.NewEvent[request]("inlinecheck", "request_done")
	tick        = usertrace.NewEvent[small]("inlinecheck", "tick")
)

// Serve fires events the ways users do.
func Serve(method string, status uint16, start time.Time) {
	requestDone.Emit(request{Method: method, Status: status})
	if requestDone.Enabled() {
		requestDone.Emit(request{Method: method, Status: status, Took: time.Since(start)})
	}
	tick.Emit(small{N: 1})
}
