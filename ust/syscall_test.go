package ust

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/ring"
)

// Counting system calls around a burst.
//
// Method: the test re-executes its own binary as a child under
// `strace -f` (Debian's strace; CI installs it). The child sets up a
// tracer, warms up, then makes a marker system call (faccessat of a path
// that names the marker), emits 1e6 events into the ring, and makes a second
// marker. The parent reads the strace log and counts the system calls that
// the burst thread made between the two markers: it must be zero.
//
// The child runs with GOMAXPROCS=1 and GODEBUG=asyncpreemptoff=1 so that the
// scheduler's own time-slice preemption of a goroutine that runs for more
// than 10 ms makes no system call either: asynchronous preemption signals
// the thread (rt_sigreturn), and with a second P a cooperative preemption
// wakes another thread (futex). Neither is the tracer's doing; both were
// seen before these settings. The markers must come from the same thread
// (checked). Other threads (sysmon's nanosleep) are not on the event path
// and are not counted.
const (
	syscallEnv   = "USERTRACE_UST_SYSCALL_CHILD"
	markerBegin  = "/usertrace-syscall-marker-begin"
	markerEnd    = "/usertrace-syscall-marker-end"
	syscallBurst = 1_000_000
)

func syscallChild() {
	tr, err := New(Config{Ring: ring.Config{Overwrite: true}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	if _, err := tr.Attach(benchPoint); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := range 100_000 { // warm up: touch the ring's pages
		emit(uint64(i), uint32(i), benchString)
	}
	unix.Faccessat(unix.AT_FDCWD, markerBegin, unix.F_OK, 0)
	inject := os.Getenv(syscallEnv) == "inject"
	for i := range syscallBurst {
		emit(uint64(i), uint32(i), benchString)
		if inject && i%100_000 == 0 {
			unix.Getppid() // the control run: the method must see these
		}
	}
	unix.Faccessat(unix.AT_FDCWD, markerEnd, unix.F_OK, 0)
	fmt.Fprintf(os.Stderr, "tid %d lost %d\n", unix.Gettid(), tr.Lost())
	os.Exit(0)
}

func TestNoSyscallsInBurst(t *testing.T) {
	if calls := countBurstSyscalls(t, "1"); len(calls) != 0 {
		t.Fatalf("%d system calls by the burst thread during %d events, want 0:\n%s", len(calls), syscallBurst, strings.Join(calls[:min(len(calls), 20)], "\n"))
	}
	// Control: a child that makes 10 getppid calls in its burst.
	if calls := countBurstSyscalls(t, "inject"); len(calls) != 10 {
		t.Fatalf("control run: counted %d system calls, want the 10 injected:\n%s", len(calls), strings.Join(calls, "\n"))
	}
}

// countBurstSyscalls runs the child under strace and returns the system
// calls its burst thread made between the markers.
func countBurstSyscalls(t *testing.T, mode string) []string {
	strace, err := exec.LookPath("strace")
	if err != nil {
		t.Skip("strace not installed (apt-get install strace): cannot count system calls")
	}
	log := filepath.Join(t.TempDir(), "strace.log")
	cmd := exec.Command(strace, "-f", "-qq", "-o", log, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), syscallEnv+"="+mode, "GODEBUG=asyncpreemptoff=1", "GOMAXPROCS=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("strace child: %v\n%s", err, out)
	}
	f, err := os.Open(log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var tid string
	var inBurst, sawEnd bool
	var calls []string
	total := 0
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		total++
		who, rest, _ := strings.Cut(line, " ")
		// strace pads the pid column: "5230  <... getppid resumed>" (a
		// call interrupted by another thread's output is split in two).
		rest = strings.TrimLeft(rest, " ")
		switch {
		case strings.Contains(rest, markerBegin):
			tid, inBurst = who, true
		case strings.Contains(rest, markerEnd):
			if who != tid {
				t.Fatalf("end marker from thread %s, begin from %s", who, tid)
			}
			inBurst, sawEnd = false, true
		case inBurst && who == tid && !strings.HasPrefix(rest, "<...") && !strings.HasPrefix(rest, "---") && !strings.HasPrefix(rest, "+++"):
			calls = append(calls, rest)
		}
	}
	if tid == "" || !sawEnd {
		t.Fatalf("markers not found in the strace log (%d lines); child said:\n%s", total, out)
	}
	t.Logf("strace log: %d lines; burst thread %s; child: %s", total, tid, strings.TrimSpace(string(out)))
	return calls
}
