package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// fifoThreads counts the threads of process pid in SCHED_FIFO.
func fifoThreads(t *testing.T, pid int) int {
	t.Helper()
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range tasks {
		tid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if a, err := unix.SchedGetAttr(tid, 0); err == nil && a.Policy == unix.SCHED_FIFO {
			n++
		}
	}
	return n
}

// TestRealtimeDrain: while an app bursts, the daemon drains its ring from a
// real-time (SCHED_FIFO) thread; once the app is quiet, no thread of the
// daemon is real-time any more; with -keep-priority none ever is.
func TestRealtimeDrain(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_NICE)")
	}
	build(t)
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep-priority=%v", keep), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			tmp := t.TempDir()
			var flags []string
			if keep {
				flags = append(flags, "-keep-priority")
			}
			d := startDaemon(t, dir, flags...)
			cli(t, dir, "create", "-o", filepath.Join(tmp, "trace"), "s1")
			cli(t, dir, "enable", "-s", "s1", "testapp:*")
			cli(t, dir, "start", "-s", "s1")
			goFile, exitFile := filepath.Join(tmp, "go"), filepath.Join(tmp, "exit")
			const n = 2000000
			app, out := startApp(t, dir, "-n", fmt.Sprint(n), "-goroutines", "2", "-go", goFile, "-exit", exitFile)
			waitTracing(t, dir, 1)
			emitted := make(chan struct{})
			go func() {
				defer close(emitted)
				for out.Scan() {
					if out.Text() == "done" {
						return
					}
				}
			}()
			os.WriteFile(goFile, nil, 0o644)
			pid := d.cmd.Process.Pid
			most := 0
		burst:
			for {
				most = max(most, fifoThreads(t, pid))
				select {
				case <-emitted:
					break burst
				case <-time.After(200 * time.Microsecond):
				}
			}
			if keep {
				if most != 0 {
					t.Errorf("%d real-time threads in a daemon started with -keep-priority", most)
				}
			} else {
				if most == 0 {
					t.Errorf("no real-time thread in the daemon while the app burst")
				}
				// The app is still connected but quiet: the consumer leaves
				// the real-time class within ~10 ms.
				waitFor(t, 5*time.Second, "the daemon's threads to leave SCHED_FIFO", func() bool {
					return fifoThreads(t, pid) == 0
				})
				// Counting, deferred during the burst, catches up while the
				// session runs: every event but those dropped and those in
				// packets the app has not closed (at most one per shard, of
				// 256 KiB of events of 53 bytes and more).
				emitted := uint64(2 * (n + n/10))
				open := uint64(runtime.NumCPU() * (256 << 10) / 50)
				waitFor(t, 10*time.Second, "the session's event count to catch up", func() bool {
					ss := status(t, dir).Sessions
					return len(ss) == 1 && ss[0].Events+ss[0].Discarded+open >= emitted
				})
			}
			os.WriteFile(exitFile, nil, 0o644)
			if err := app.Wait(); err != nil {
				t.Fatalf("app: %v", err)
			}
			stop := cli(t, dir, "stop", "-s", "s1")
			t.Logf("most real-time threads at once: %d; %s", most, strings.TrimSpace(stop))
		})
	}
}
