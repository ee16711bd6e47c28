package noescape

import (
	"testing"
	"unsafe"
)

type tracer interface{ Trace(b []byte) }

type nop struct{}

func (nop) Trace(b []byte) {}

var sink tracer = nop{}

//go:noinline
func emit(x byte) {
	var buf [64]byte
	buf[0] = x
	sink.Trace(Bytes(buf[:8]))
}

// Without Bytes, buf would move to the heap: an interface call's arguments
// escape.
func TestStackBufferStaysOnStack(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { emit(1) }); n != 0 {
		t.Fatalf("emit allocates %v times per call; Bytes no longer hides the buffer", n)
	}
}

func TestBytesKeepsHeader(t *testing.T) {
	b := make([]byte, 3, 9)
	out := Bytes(b)
	if &out[0] != &b[0] || len(out) != 3 {
		t.Fatalf("Bytes changed the slice: len %d", len(out))
	}
}

var fnSink = func(p unsafe.Pointer) { _ = *(*byte)(p) }

//go:noinline
func callFunc(x byte) {
	var v [32]byte
	v[0] = x
	fnSink(Pointer(unsafe.Pointer(&v)))
}

// Without Pointer, v would move to the heap: a function value's arguments
// escape.
func TestPointerStaysOnStack(t *testing.T) {
	if n := testing.AllocsPerRun(100, func() { callFunc(1) }); n != 0 {
		t.Fatalf("callFunc allocates %v times per call; Pointer no longer hides the pointer", n)
	}
}
