package userevents

// This file holds the package's only unsafe code: the ioctls that pass
// structures by address and the writev that starts each event.

import (
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Pin the layouts of the kernel structures (see abi.go).
var (
	_ [unsafe.Offsetof(userReg{}.enableAddr) - 8]byte
	_ [8 - unsafe.Offsetof(userReg{}.enableAddr)]byte
	_ [unsafe.Offsetof(userReg{}.writeIndex) - 24]byte
	_ [24 - unsafe.Offsetof(userReg{}.writeIndex)]byte
	_ [unsafe.Sizeof(userUnreg{}) - userUnregSize]byte
	_ [userUnregSize - unsafe.Sizeof(userUnreg{})]byte
)

// ioctlReg issues DIAG_IOCSREG for the NUL-terminated desc.
func ioctlReg(fd int, desc []byte, addr uintptr, bit uint8, flags uint16) (uint32, error) {
	r := userReg{
		size:       userRegSize,
		enableBit:  bit,
		enableSize: 4,
		flags:      flags,
		enableAddr: uint64(addr),
		nameArgs:   uint64(uintptr(unsafe.Pointer(unsafe.SliceData(desc)))),
	}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), diagIOCSREG, uintptr(unsafe.Pointer(&r)))
	runtime.KeepAlive(desc) // the kernel read it through an integer
	if e != 0 {
		return 0, e
	}
	return r.writeIndex, nil
}

// ioctlUnreg issues DIAG_IOCSUNREG: the kernel stops updating the bit and
// clears it.
func ioctlUnreg(fd int, addr uintptr, bit uint8) error {
	u := userUnreg{size: userUnregSize, disableBit: bit, disableAddr: uint64(addr)}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), diagIOCSUNREG, uintptr(unsafe.Pointer(&u)))
	if e != 0 {
		return e
	}
	return nil
}

// ioctlDel issues DIAG_IOCSDEL for the NUL-terminated name.
func ioctlDel(fd int, name []byte) error {
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), diagIOCSDEL, uintptr(unsafe.Pointer(unsafe.SliceData(name))))
	runtime.KeepAlive(name)
	if e != 0 {
		return e
	}
	return nil
}

// writeEvent writes one event: [index u32][data] with one writev, so the
// kernel sees one record. data may live on the caller's stack: nothing here
// keeps it, the iovecs are on this frame, and a goroutine's stack does not
// move while it is in a system call. (unix.Writev would allocate its iovec
// slice and, in -race builds, make data escape.)
func writeEvent(fd int, index *uint32, data []byte) error {
	var iov [2]unix.Iovec
	iov[0].Base = (*byte)(unsafe.Pointer(index))
	iov[0].SetLen(4)
	n := 1
	if len(data) > 0 {
		iov[1].Base = unsafe.SliceData(data)
		iov[1].SetLen(len(data))
		n = 2
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(n))
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return e
		}
		return nil
	}
}
