package daemon

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// ConsumerNice is the nice value RaisePriority gives the daemon.
const ConsumerNice = -5

// RaisePriority makes every thread of this process run at ConsumerNice, so
// that draining rings keeps up when the traced programs keep every CPU busy:
// on 2 cores, 2 goroutines emitting at full speed (~25 M events/s) left the
// daemon too little CPU and 30–47 % of their events were dropped; at nice -5
// none are (see docs/design.md). Threads the Go runtime starts later inherit
// the value. It needs CAP_SYS_NICE (root); without it, it changes nothing
// and returns the error. Call it after starting any child process, which
// would otherwise inherit the priority.
func RaisePriority() error {
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
		if err := unix.Setpriority(unix.PRIO_PROCESS, tid, ConsumerNice); err != nil && first == nil {
			first = err
		}
	}
	return first
}
