package ftrace

// This file holds the package's only unsafe code.

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// write is write(2) on b without the race-detector hooks of unix.Write,
// which make b escape to the heap in -race builds (its raceReadRange takes
// b's address), so that Trace's stack buffer stays on the stack in every
// build. The kernel copies b before the call returns; the goroutine's stack
// cannot move while it is in the system call.
func write(fd int, b []byte) (int, error) {
	n, _, e := unix.Syscall(unix.SYS_WRITE, uintptr(fd), uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
	if e != 0 {
		return int(n), e
	}
	return int(n), nil
}
