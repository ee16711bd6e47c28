// Package rt holds the few runtime internals that the user-space tracer's hot
// path needs, reached with go:linkname. They are all on the runtime's "hall of
// shame" list (see $(go env GOROOT)/src/runtime/proc.go and time_nofake.go),
// so the runtime keeps them linkable.
//
// Nothing else in the module may use linkname: add a shim here instead.
package rt

import (
	_ "unsafe" // for go:linkname
)

// Nanotime returns CLOCK_MONOTONIC in nanoseconds, read through the vDSO
// without a system call. Ring timestamps are [Ticks] (the TSC on amd64,
// else Nanotime); the reasoning is in docs/ring-abi.md, "Clock".
//
// Measured on the 2-vCPU target (clocksource tsc): 24 ns, against 9.6 ns for
// RDTSC, 20 ns for RDTSCP and 48 ns for time.Now.
//
//go:linkname Nanotime runtime.nanotime
//go:noescape
func Nanotime() int64

// ProcPin disables preemption of the calling goroutine and returns the id of
// the P it runs on, in [0, GOMAXPROCS). Until the matching [ProcUnpin] no
// other goroutine runs on that P, so per-P data needs no lock against
// goroutines of the same P. The caller must not block, allocate much or call
// anything that may park while pinned.
//
//go:linkname ProcPin runtime.procPin
//go:nosplit
func ProcPin() int

// ProcUnpin undoes [ProcPin].
//
//go:linkname ProcUnpin runtime.procUnpin
//go:nosplit
func ProcUnpin()
