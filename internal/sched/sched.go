// Package sched gives a ring consumer the CPU when the programs it drains
// keep every CPU busy.
//
// A consumer needs little CPU (copying 1.3 GB/s of packets to a file takes
// about 40 % of a core here) but needs it on time: a default ring holds
// a few milliseconds of a full-speed burst. With two writers spinning on two
// cores, the fair scheduler lets a consumer at normal priority
// wait long enough for rings to overflow: BenchmarkDrain in package ust
// loses 14–15 % that way (USERTRACE_DRAIN_NORMAL=1). A consumer thread in SCHED_FIFO at the lowest real-time
// priority preempts the writers the moment its sleep ends, drains, and
// sleeps again; the same benchmark then loses nothing.
//
// The real-time class is used only by a thread locked to one goroutine,
// only while that goroutine drains a busy ring ([LockRealtime] to
// [Realtime.Unlock]), and it sleeps with [Sleep], which waits in the kernel
// so that the timer wakes this thread directly, not a Go timer on a thread
// of normal priority. Threads forked from it start in the normal class
// (SCHED_RESET_ON_FORK). The kernel's real-time throttling
// (/proc/sys/kernel/sched_rt_runtime_us) still leaves other tasks their
// share should a consumer never sleep.
package sched

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Priority is the SCHED_FIFO priority of a consumer thread: the lowest, so
// that any other real-time task of the system still comes first.
const Priority = 1

// Realtime is the calling goroutine's OS thread, made real-time by
// [LockRealtime].
type Realtime struct {
	prev unix.SchedAttr
}

// LockRealtime locks the calling goroutine to its OS thread and moves the
// thread to SCHED_FIFO at [Priority]. Call [Realtime.Unlock] from the same
// goroutine when the burst is over. It needs CAP_SYS_NICE or a nonzero
// RLIMIT_RTPRIO; without either it returns an error and leaves the
// goroutine unlocked and the thread as it was.
func LockRealtime() (*Realtime, error) {
	runtime.LockOSThread()
	prev, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("reading the thread's scheduling policy: %w", err)
	}
	attr := unix.SchedAttr{
		Size:     unix.SizeofSchedAttr,
		Policy:   unix.SCHED_FIFO,
		Flags:    unix.SCHED_FLAG_RESET_ON_FORK,
		Priority: Priority,
	}
	if err := unix.SchedSetAttr(0, &attr, 0); err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("making the consumer thread real-time (SCHED_FIFO %d; needs CAP_SYS_NICE or RLIMIT_RTPRIO): %w", Priority, err)
	}
	return &Realtime{prev: *prev}, nil
}

// Unlock gives the thread back its previous policy and nice value and
// unlocks the goroutine from it. If the policy cannot be restored the
// goroutine stays locked, so that the Go runtime never runs other
// goroutines on a real-time thread (it then ends the thread when the
// goroutine exits).
func (r *Realtime) Unlock() error {
	prev := r.prev
	prev.Size = unix.SizeofSchedAttr
	// Keep reset-on-fork: clearing it needs CAP_SYS_NICE, which a thread
	// made real-time through RLIMIT_RTPRIO does not have. On a normal
	// thread it only means that children start at nice 0.
	prev.Flags |= unix.SCHED_FLAG_RESET_ON_FORK
	if err := unix.SchedSetAttr(0, &prev, 0); err != nil {
		return fmt.Errorf("restoring the consumer thread's scheduling policy: %w", err)
	}
	runtime.UnlockOSThread()
	return nil
}

// Sleep waits d in the kernel (nanosleep), holding the OS thread. Unlike
// time.Sleep, the wake-up comes from the kernel's timer straight to this
// thread, so a real-time thread runs again within microseconds however
// busy the CPUs are (BenchmarkWakeLate). The goroutine then needs a Go P
// again: it gets its own back at once unless the runtime handed it to
// other work during the sleep and none is idle, in which case it waits
// for a thread of normal priority to pass one on.
func Sleep(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	for {
		err := unix.Nanosleep(&ts, &ts)
		if err != unix.EINTR {
			return
		}
	}
}

// NiceAllThreads sets the nice value of every thread of this process (on
// Linux, nice is per thread; threads the Go runtime starts later inherit
// it from the thread that starts them). It needs CAP_SYS_NICE to lower the
// value; it returns the first error and goes on with the other threads.
func NiceAllThreads(nice int) error {
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	var first error
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		// On Linux, PRIO_PROCESS with a thread id sets that thread's nice.
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, nice); err != nil && first == nil {
			first = err
		}
	}
	return first
}
