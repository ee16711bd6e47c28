// Package scope decides which processes a usertrace daemon may serve: its
// scope is the PID-namespace subtree rooted at its own PID namespace. A
// process is in scope if its PID namespace is the root's or nested under it,
// which is also exactly when the process has a pid in the root namespace.
//
// A peer is identified from the connection, never from what it says:
// SO_PEERPIDFD gives a pidfd of the process that connected,
// PIDFD_GET_PID_NAMESPACE its PID namespace, and NS_GET_PARENT walks up from
// there until the root (in scope) or until the kernel refuses to go above the
// caller's own namespace (out of scope). A process in a sibling container
// fails three ways at once: it has pid 0 in the caller's namespace,
// PIDFD_GET_INFO answers EREMOTE and PIDFD_GET_PID_NAMESPACE answers EACCES.
// On kernels without SO_PEERPIDFD (before 6.5) the peer is found with
// SO_PEERCRED and pidfd_open, then re-checked against pid reuse.
//
// Every refusal is [ErrOutOfScope]; the wrapped text says why, for the
// daemon's log only: what a refused peer is told must not depend on it.
//
// Package scope needs Linux 6.11 (pidfd namespace ioctls) for namespace ids
// and the subtree walk; 6.18 adds NS_GET_ID, before which ids are the
// namespace files' inode numbers.
package scope

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// ErrOutOfScope is every refusal: the process is outside the scope, gone,
// or could not be identified.
var ErrOutOfScope = errors.New("out of scope")

func refuse(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrOutOfScope}, args...)...)
}

// IDs are a process's namespace ids: NS_GET_ID, or the namespace file's
// inode number on kernels before 6.18. Zero means unknown.
type IDs struct {
	PID    uint64 `json:"pid"`
	Mnt    uint64 `json:"mnt"`
	Net    uint64 `json:"net"`
	User   uint64 `json:"user"`
	Cgroup uint64 `json:"cgroup"`
}

// Map returns the ids keyed "pid", "mnt", "net", "user", "cgroup", leaving
// out the unknown ones.
func (ids IDs) Map() map[string]uint64 {
	m := map[string]uint64{}
	for k, v := range map[string]uint64{"pid": ids.PID, "mnt": ids.Mnt, "net": ids.Net, "user": ids.User, "cgroup": ids.Cgroup} {
		if v != 0 {
			m[k] = v
		}
	}
	return m
}

// nsKey identifies a namespace file: nsfs device and inode.
type nsKey struct{ dev, ino uint64 }

func keyOf(fd int) (nsKey, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nsKey{}, err
	}
	return nsKey{st.Dev, st.Ino}, nil
}

// Scope is a PID-namespace subtree. It holds its root namespace open.
type Scope struct {
	root *os.File
	key  nsKey
	// Fallback forces the SO_PEERCRED + pidfd_open path in Conn, as on
	// kernels before 6.5 (for tests).
	Fallback bool
}

// Self returns the scope rooted at the calling process's PID namespace.
func Self() (*Scope, error) {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return nil, fmt.Errorf("scope: pidfd_open self: %w", err)
	}
	defer unix.Close(fd)
	nfd, err := ioctlFD(fd, pidfdGetPIDNS)
	if err != nil {
		// Before 6.11: the /proc of any ancestor namespace shows our own.
		f, err := os.Open("/proc/self/ns/pid")
		if err != nil {
			return nil, fmt.Errorf("scope: own pid namespace: %w", err)
		}
		return newScope(f)
	}
	return newScope(os.NewFile(uintptr(nfd), "pidns"))
}

// Of returns the scope rooted at the PID namespace of the process behind
// pidfd (a forwarding daemon's: its apps must lie there). The caller keeps
// pidfd.
func Of(pidfd *os.File) (*Scope, error) {
	nfd, err := ioctlFD(int(pidfd.Fd()), pidfdGetPIDNS)
	if err != nil {
		return nil, refuse("pid namespace of the process: %v", err)
	}
	return newScope(os.NewFile(uintptr(nfd), "pidns"))
}

func newScope(f *os.File) (*Scope, error) {
	k, err := keyOf(int(f.Fd()))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("scope: stat pid namespace: %w", err)
	}
	return &Scope{root: f, key: k}, nil
}

// Close releases the root namespace.
func (s *Scope) Close() error { return s.root.Close() }

// ID returns the root namespace's id.
func (s *Scope) ID() uint64 { return idOf(int(s.root.Fd()), s.key) }

// Peer is a process found in a scope.
type Peer struct {
	// PIDFD refers to the process; the Peer owns it.
	PIDFD *os.File
	// PID is the process's pid in the caller's PID namespace, or 0 if the
	// kernel cannot say (before 6.13).
	PID int
	// Depth is how many PID namespaces below the scope's root the process
	// lives: 0 in the root itself.
	Depth int
	// NS are the process's namespace ids.
	NS IDs
	// Fallback is set when the peer was found with SO_PEERCRED and
	// pidfd_open (kernels before 6.5).
	Fallback bool
}

// Close closes the peer's pidfd.
func (p *Peer) Close() error { return p.PIDFD.Close() }

// Conn identifies the process at the other end of a connected unix socket
// and checks that it is in scope. The process is the one that connected
// (SO_PEERPIDFD; the kernel records it at connect), whatever it says.
// Errors wrap ErrOutOfScope, or report that the socket is unusable.
func (s *Scope) Conn(c syscall.Conn) (*Peer, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("scope: %w", err)
	}
	var (
		pidfd    = -1
		cred     *unix.Ucred
		t0       uint64
		fallback = s.Fallback
		gerr     error
	)
	cerr := raw.Control(func(fd uintptr) {
		if !fallback {
			pidfd, gerr = peerPIDFD(int(fd))
			if gerr == nil {
				return
			}
			if !errors.Is(gerr, unix.ENOPROTOOPT) && !errors.Is(gerr, unix.EINVAL) {
				return
			}
			fallback = true
		}
		t0 = bootTicks()
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil {
		return nil, fmt.Errorf("scope: %w", cerr)
	}
	if gerr != nil {
		return nil, refuse("peer credentials: %v", gerr)
	}
	if fallback {
		return s.fromCred(int(cred.Pid), t0)
	}
	p, err := s.check(pidfd)
	if err != nil {
		unix.Close(pidfd)
		return nil, err
	}
	return p, nil
}

// Process checks that the process behind pidfd is in scope. The caller
// keeps pidfd; the Peer has its own.
func (s *Scope) Process(pidfd *os.File) (*Peer, error) {
	fd, err := unix.FcntlInt(pidfd.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, refuse("dup: %v", err)
	}
	p, err := s.check(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	return p, nil
}

// fromCred is the path for kernels without SO_PEERPIDFD. SO_PEERCRED gives
// the pid the peer had at connect (0 if it has none in our namespace); by
// the time pidfd_open runs that process may have exited and its pid gone to
// a new process. So the process the pidfd names must have started before
// the connection was looked at (t0, in clock ticks since boot), and must
// still be alive after its start time was read, so that the read was about
// it. A process that starts within the same 10 ms tick is not caught.
func (s *Scope) fromCred(pid int, t0 uint64) (*Peer, error) {
	if pid <= 0 {
		return nil, refuse("peer has no pid in this namespace")
	}
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, refuse("pidfd_open %d: %v", pid, err)
	}
	start, err := startTicks(pid)
	if err != nil || !alive(fd) || start > t0 {
		unix.Close(fd)
		return nil, refuse("peer %d went away or its pid was reused", pid)
	}
	p, err := s.check(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	p.Fallback = true
	if p.PID == 0 {
		p.PID = pid
	}
	return p, nil
}

// check walks from the pid namespace of pidfd's process up to the scope's
// root. On success the Peer owns pidfd.
func (s *Scope) check(pidfd int) (*Peer, error) {
	pid, err := pidfdPID(pidfd)
	switch {
	case errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EINVAL):
		pid = 0 // before 6.13: the walk decides alone
	case errors.Is(err, unix.EREMOTE):
		return nil, refuse("process has no pid in this namespace (EREMOTE)")
	case err != nil:
		return nil, refuse("pidfd info: %v", err)
	case pid == 0:
		return nil, refuse("process has no pid in this namespace")
	}
	nfd, err := ioctlFD(pidfd, pidfdGetPIDNS)
	if err != nil {
		return nil, refuse("pid namespace: %v", err)
	}
	depth, err := s.walk(nfd) // closes nfd
	if err != nil {
		return nil, err
	}
	// The namespace was read from a live process, not from a recycled pid:
	// a pidfd names one process for ever; a dead one has no namespaces.
	if !alive(pidfd) {
		return nil, refuse("process exited")
	}
	return &Peer{PIDFD: os.NewFile(uintptr(pidfd), "pidfd"), PID: pid, Depth: depth, NS: namespaces(pidfd)}, nil
}

// walk climbs from the namespace nfd to the scope's root. It closes nfd.
func (s *Scope) walk(nfd int) (int, error) {
	for depth := 0; depth <= maxPIDNSLevel; depth++ {
		k, err := keyOf(nfd)
		if err != nil {
			unix.Close(nfd)
			return 0, refuse("stat namespace: %v", err)
		}
		if k == s.key {
			unix.Close(nfd)
			return depth, nil
		}
		parent, err := ioctlFD(nfd, nsGetParent)
		unix.Close(nfd)
		if err != nil {
			// EPERM: the parent is above the caller's own namespace, so
			// the root was not on the way.
			return 0, refuse("pid namespace is not under the scope's root (%v)", err)
		}
		nfd = parent
	}
	unix.Close(nfd)
	return 0, refuse("pid namespaces nested deeper than %d", maxPIDNSLevel)
}

// namespaces reads the ids of a process's namespaces; unknown ones stay 0.
func namespaces(pidfd int) IDs {
	get := func(req uint) uint64 {
		fd, err := ioctlFD(pidfd, req)
		if err != nil {
			return 0
		}
		defer unix.Close(fd)
		k, err := keyOf(fd)
		if err != nil {
			return 0
		}
		return idOf(fd, k)
	}
	return IDs{PID: get(pidfdGetPIDNS), Mnt: get(pidfdGetMntNS), Net: get(pidfdGetNetNS),
		User: get(pidfdGetUserNS), Cgroup: get(pidfdGetCgroupNS)}
}

func idOf(fd int, k nsKey) uint64 {
	if id, err := nsID(fd); err == nil {
		return id
	}
	return k.ino
}

// Namespaces returns the calling process's namespace ids.
func Namespaces() IDs {
	fd, err := unix.PidfdOpen(os.Getpid(), 0)
	if err != nil {
		return IDs{}
	}
	defer unix.Close(fd)
	return namespaces(fd)
}

// bootTicks is CLOCK_BOOTTIME in clock ticks (USER_HZ, 100 on Linux), the
// unit of a process's start time in /proc/PID/stat.
func bootTicks() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
	return uint64(ts.Sec)*100 + uint64(ts.Nsec)/1e7
}

// startTicks reads a process's start time (field 22 of /proc/PID/stat).
// /proc must be mounted for the caller's pid namespace.
func startTicks(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("bad stat")
	}
	f := strings.Fields(s[i+1:]) // from field 3 (state) on
	if len(f) < 20 {
		return 0, errors.New("bad stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}
