package daemon

import (
	"io"
	"log/slog"
	"os"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func policy(t *testing.T) uint32 {
	t.Helper()
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		t.Fatal(err)
	}
	return a.Policy
}

// inGoroutine runs f on a goroutine of its own, which may lock its thread.
func inGoroutine(f func()) {
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	<-done
}

func testGate(slots int) *rtGate {
	return &rtGate{slots: make(chan struct{}, slots), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

// TestRealtimeBudget: a consumer becomes real-time when its ring is busy,
// leaves when it is quiet, and leaves for the rest of the window once it
// has spent its budget draining, whatever the ring says.
func TestRealtimeBudget(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_NICE)")
	}
	inGoroutine(func() {
		runtime.LockOSThread() // the same thread throughout, to read its policy
		defer runtime.UnlockOSThread()
		r := realtime{gate: testGate(1)}
		defer r.release()
		t0 := time.Now()
		r.update(true, time.Millisecond, t0)
		if !r.active() || policy(t) != unix.SCHED_FIFO {
			t.Fatalf("busy ring: active %v, policy %d; want real-time", r.active(), policy(t))
		}
		r.update(false, time.Millisecond, t0.Add(time.Millisecond))
		if r.active() || policy(t) != unix.SCHED_NORMAL {
			t.Fatalf("quiet ring: active %v, policy %d; want normal", r.active(), policy(t))
		}
		// Spend the budget: 80 ms of draining in one window.
		now := t0.Add(2 * time.Millisecond)
		r.update(true, time.Millisecond, now)
		for i := 0; r.active() && i < 100; i++ {
			now = now.Add(10 * time.Microsecond)
			r.update(true, 10*time.Millisecond, now)
		}
		if r.active() || policy(t) != unix.SCHED_NORMAL {
			t.Fatalf("budget spent (%v in the window): still real-time", r.spent)
		}
		if r.spent < rtBudget || r.spent > rtBudget+10*time.Millisecond {
			t.Errorf("left real-time after %v of draining, want just over %v", r.spent, rtBudget)
		}
		r.update(true, time.Millisecond, now.Add(time.Millisecond))
		if r.active() {
			t.Fatal("re-entered real-time in the window whose budget is spent")
		}
		r.update(true, time.Millisecond, r.window.Add(rtWindow))
		if !r.active() || policy(t) != unix.SCHED_FIFO {
			t.Fatal("a new window: not real-time again")
		}
	})
}

// TestRealtimeSlots: no more consumers are real-time at once than the gate
// has slots; a slot freed is taken by the next busy consumer.
func TestRealtimeSlots(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (CAP_SYS_NICE)")
	}
	gate := testGate(1)
	first := make(chan *realtime)
	release := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := &realtime{gate: gate}
		r.update(true, 0, time.Now())
		first <- r
		<-release
		r.release()
	}()
	if r := <-first; !r.active() {
		t.Fatal("the first busy consumer is not real-time")
	}
	inGoroutine(func() {
		r := realtime{gate: gate}
		defer r.release()
		r.update(true, 0, time.Now())
		if r.active() {
			t.Error("a second consumer became real-time with the only slot taken")
		}
		close(release)
		<-done
		r.update(true, 0, time.Now())
		if !r.active() {
			t.Error("the slot was freed but the second consumer did not take it")
		}
	})
	if len(gate.slots) != 0 {
		t.Errorf("%d slots still taken after both released", len(gate.slots))
	}
}

// TestRealtimeOff: with Config.NoRealtime a busy consumer stays normal.
func TestRealtimeOff(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: without CAP_SYS_NICE no consumer can be real-time anyway")
	}
	inGoroutine(func() {
		g := testGate(1)
		g.off = true
		r := realtime{gate: g}
		r.update(true, 0, time.Now())
		if r.active() {
			r.release()
			t.Error("real-time with NoRealtime set")
		}
	})
}
