package scope

// The raw system calls of package scope, in one place: every ioctl on a
// pidfd or a namespace file, and the one that needs unsafe.

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// Kernel ABI. x/sys/unix defines these; they are listed here with the uapi
// header that defines them so that a reader can check the numbers.
const (
	// include/uapi/linux/nsfs.h (NSIO = 0xb7)
	nsGetParent = unix.NS_GET_PARENT // _IO(NSIO, 0x2): fd of the parent pid/user namespace; EPERM above the caller's own
	nsGetID     = unix.NS_GET_ID     // _IOR(NSIO, 13, __u64): the namespace's 64-bit id (Linux 6.18)

	// include/uapi/linux/pidfd.h (PIDFS_IOCTL_MAGIC = 0xFF), Linux 6.11
	pidfdGetCgroupNS = unix.PIDFD_GET_CGROUP_NAMESPACE // _IO(0xFF, 1)
	pidfdGetMntNS    = unix.PIDFD_GET_MNT_NAMESPACE    // _IO(0xFF, 3)
	pidfdGetNetNS    = unix.PIDFD_GET_NET_NAMESPACE    // _IO(0xFF, 4)
	pidfdGetPIDNS    = unix.PIDFD_GET_PID_NAMESPACE    // _IO(0xFF, 5): EACCES for a process the caller may not inspect
	pidfdGetUserNS   = unix.PIDFD_GET_USER_NAMESPACE   // _IO(0xFF, 8)

	// include/uapi/linux/pidfd.h, Linux 6.13: struct pidfd_info; EREMOTE
	// (6.18) or pid 0 for a process outside the caller's pid namespace.
	pidfdInfoPID = unix.PIDFD_INFO_PID

	// include/uapi/asm-generic/socket.h, Linux 6.5
	soPeerPIDFD = unix.SO_PEERPIDFD

	// include/linux/pid_namespace.h: MAX_PID_NS_LEVEL
	maxPIDNSLevel = 32
)

// ioctlFD runs an ioctl that answers with a new file descriptor
// (O_CLOEXEC: open_related_ns and open_namespace always set it).
func ioctlFD(fd int, req uint) (int, error) {
	for {
		nfd, err := unix.IoctlRetInt(fd, req)
		if err == unix.EINTR {
			continue
		}
		return nfd, err
	}
}

// nsID asks the kernel for a namespace file's 64-bit id (NS_GET_ID).
func nsID(fd int) (uint64, error) {
	var id uint64
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(nsGetID), uintptr(unsafe.Pointer(&id)))
	if e != 0 {
		return 0, e
	}
	return id, nil
}

// pidfdPID returns the pid of a pidfd's process in the caller's pid
// namespace: 0 (or EREMOTE) if it has none there.
func pidfdPID(fd int) (int, error) {
	info := unix.PidfdInfo{Mask: pidfdInfoPID}
	if err := unix.IoctlPidfdInfo(fd, &info); err != nil {
		return 0, err
	}
	return int(info.Pid), nil
}

// peerPIDFD returns SO_PEERPIDFD of a connected socket.
func peerPIDFD(fd int) (int, error) {
	return unix.GetsockoptInt(fd, unix.SOL_SOCKET, soPeerPIDFD)
}

// alive reports whether a pidfd's process has not exited
// (pidfd_send_signal with signal 0 checks without sending).
func alive(pidfd int) bool {
	return unix.PidfdSendSignal(pidfd, 0, nil, 0) == nil
}
