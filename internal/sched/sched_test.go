package sched

import (
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	unprivilegedEnv = "USERTRACE_SCHED_UNPRIVILEGED"
	spinEnv         = "USERTRACE_SCHED_SPIN"
)

func TestMain(m *testing.M) {
	if os.Getenv(unprivilegedEnv) != "" {
		unprivileged()
		return
	}
	if os.Getenv(spinEnv) != "" {
		for {
		}
	}
	os.Exit(m.Run())
}

func thisThread(t testing.TB) *unix.SchedAttr {
	t.Helper()
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestLockRealtime(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_NICE)")
	}
	done := make(chan struct{})
	go func() { // a goroutine of its own: its thread may end if Unlock fails
		defer close(done)
		runtime.LockOSThread() // compare the same thread before and after
		defer runtime.UnlockOSThread()
		before := thisThread(t)
		rt, err := LockRealtime()
		if err != nil {
			t.Error(err)
			return
		}
		during := thisThread(t)
		if during.Policy != unix.SCHED_FIFO || during.Priority != Priority || during.Flags&unix.SCHED_FLAG_RESET_ON_FORK == 0 {
			t.Errorf("while locked: policy %d priority %d flags %#x; want SCHED_FIFO %d with reset-on-fork",
				during.Policy, during.Priority, during.Flags, Priority)
		}
		// A child started from the real-time thread runs in the normal class.
		child := exec.Command("sleep", "10")
		if err := child.Start(); err != nil {
			t.Error(err)
		} else {
			a, err := unix.SchedGetAttr(child.Process.Pid, 0)
			child.Process.Kill()
			child.Wait()
			if err != nil {
				t.Error(err)
			} else if a.Policy != unix.SCHED_NORMAL {
				t.Errorf("a child of the real-time thread has policy %d, want SCHED_NORMAL", a.Policy)
			}
		}
		if err := rt.Unlock(); err != nil {
			t.Error(err)
			return
		}
		after := thisThread(t)
		if after.Policy != before.Policy || after.Priority != before.Priority || after.Nice != before.Nice {
			t.Errorf("after Unlock: policy %d priority %d nice %d; before: %d %d %d",
				after.Policy, after.Priority, after.Nice, before.Policy, before.Priority, before.Nice)
		}
	}()
	<-done
}

// unprivileged runs as nobody with RLIMIT_RTPRIO 0: LockRealtime must fail
// with an error that says what is missing, and change nothing.
func unprivileged() {
	runtime.LockOSThread()
	before, _ := unix.SchedGetAttr(0, 0)
	_, err := LockRealtime()
	after, _ := unix.SchedGetAttr(0, 0)
	switch {
	case err == nil:
		os.Stdout.WriteString("LockRealtime succeeded without privilege\n")
		os.Exit(1)
	case !strings.Contains(err.Error(), "CAP_SYS_NICE"):
		os.Stdout.WriteString("error does not say what is missing: " + err.Error() + "\n")
		os.Exit(1)
	case before == nil || after == nil || before.Policy != after.Policy:
		os.Stdout.WriteString("the failed call changed the thread's policy\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("ok: " + err.Error() + "\n")
	os.Exit(0)
}

func TestLockRealtimeUnprivileged(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to start a child as another user")
	}
	// The test binary's directory is private to root: run a copy.
	dir, err := os.MkdirTemp("", "sched-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/sched.test", bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dir+"/sched.test", "-test.run=^$")
	cmd.Env = append(os.Environ(), unprivilegedEnv+"=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	// RLIMIT_RTPRIO is inherited: make sure the child has none.
	var old unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_RTPRIO, &old); err != nil {
		t.Fatal(err)
	}
	if old.Cur != 0 {
		t.Skipf("RLIMIT_RTPRIO is %d here: an unprivileged thread may be real-time", old.Cur)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	t.Logf("%s", out)
}

func TestNiceAllThreads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_NICE) to lower nice")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNiceAllThreadsChild$", "-test.v")
	cmd.Env = append(os.Environ(), "USERTRACE_SCHED_NICE_CHILD=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
}

// TestNiceAllThreadsChild runs in a child process (it changes the nice
// value of the whole process).
func TestNiceAllThreadsChild(t *testing.T) {
	if os.Getenv("USERTRACE_SCHED_NICE_CHILD") == "" {
		t.Skip("run by TestNiceAllThreads")
	}
	if err := NiceAllThreads(-3); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		a, err := unix.SchedGetAttr(tid, 0)
		if err != nil {
			continue // the thread ended
		}
		if a.Nice != -3 {
			t.Errorf("thread %d: nice %d, want -3", tid, a.Nice)
		}
	}
}

// BenchmarkWakeLate measures how late a 500 µs Sleep wakes while two
// other processes keep both CPUs busy (as traced programs do), for a normal thread sleeping with
// time.Sleep and for a real-time thread sleeping with Sleep. ns/op is the
// mean lateness; p99-late-ns and max-late-ns the tail.
func BenchmarkWakeLate(b *testing.B) {
	for _, mode := range []string{"normal", "realtime"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "realtime" && os.Geteuid() != 0 {
				b.Skip("needs root (CAP_SYS_NICE)")
			}
			for range 2 {
				spin := exec.Command(os.Args[0], "-test.run=^$")
				spin.Env = append(os.Environ(), spinEnv+"=1")
				if err := spin.Start(); err != nil {
					b.Fatal(err)
				}
				defer spin.Wait()
				defer spin.Process.Kill()
			}
			const d = 500 * time.Microsecond
			late := make([]time.Duration, 0, b.N)
			done := make(chan struct{})
			go func() {
				defer close(done)
				sleep := time.Sleep
				if mode == "realtime" {
					rt, err := LockRealtime()
					if err != nil {
						b.Error(err)
						return
					}
					defer rt.Unlock()
					sleep = Sleep
				}
				b.ResetTimer()
				for range b.N {
					t0 := time.Now()
					sleep(d)
					late = append(late, time.Since(t0)-d)
				}
				b.StopTimer()
			}()
			<-done
			if len(late) == 0 {
				return
			}
			slices.Sort(late)
			var sum time.Duration
			for _, l := range late {
				sum += l
			}
			b.ReportMetric(0, "ns/op")
			b.ReportMetric(float64(sum.Nanoseconds())/float64(len(late)), "mean-late-ns")
			b.ReportMetric(float64(late[len(late)*99/100].Nanoseconds()), "p99-late-ns")
			b.ReportMetric(float64(late[len(late)-1].Nanoseconds()), "max-late-ns")
		})
	}
}
