package userevents

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/usertrace/usertrace"
	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/kernel/ftrace"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/ust"
)

type allEv struct {
	N    uint64
	Code int32
	Msg  string
}

var allEvent = usertrace.NewEvent[allEv]("uevtest", "all")

// TestAllTracersAtOnce feeds one event to an in-process callback, the ftrace
// tracer, the user-space ring tracer (package ust) and, where the kernel has
// them, user_events, all attached at once; each must see every event, with
// its values. The call site knows none of them.
func TestAllTracersAtOnce(t *testing.T) {
	// In-process callback.
	var cb [][]byte
	a, err := allEvent.Attach(usertrace.TracerFunc(func(r catalog.Record) { cb = append(cb, r.Clone().Payload) }))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Detach()

	// ftrace, text, in an instance of its own.
	if _, err := ftrace.Mount(); err != nil {
		t.Skipf("skipping: tracefs cannot be mounted here: %v", err)
	}
	ft, err := ftrace.New(ftrace.Config{Instance: fmt.Sprintf("usertrace-all-%d", os.Getpid()), CreateInstance: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ft.Close()
	if _, err := ft.Attach(allEvent.Point()); err != nil {
		t.Fatal(err)
	}

	// The user-space ring.
	ut, err := ust.New(ust.Config{Ring: ring.Config{NumSub: 4, SubSize: 64 << 10}})
	if err != nil {
		t.Fatal(err)
	}
	defer ut.Close()
	sid, err := ut.Attach(allEvent.Point())
	if err != nil {
		t.Fatal(err)
	}
	rd, err := ut.Ring().NewReader()
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()

	// user_events, when the kernel has them (the VM); enabled through tracefs.
	var ue *Registration
	var ueRoot string
	if tr, err := New(Config{}); err == nil {
		ueRoot = tr.Root()
		defer tr.Close()
		if ue, err = tr.Attach(allEvent.Point()); err != nil {
			t.Fatal(err)
		}
		clearTrace(t, tr.Root())
		en := filepath.Join(tr.Root(), "events", ue.System(), ue.Name(), "enable")
		writeFile(t, en, "1")
		defer writeFile(t, en, "0")
		waitKernelBit(t, allEvent.Point(), true)
	} else if inVM {
		t.Fatal(err)
	} else {
		t.Logf("user_events left out: %v", err)
	}

	const n = 50
	for i := range n {
		allEvent.Emit(allEv{N: uint64(i), Code: int32(-i), Msg: fmt.Sprintf("msg %d", i)})
	}
	ut.Flush()

	if len(cb) != n {
		t.Errorf("callback saw %d events, want %d", len(cb), n)
	}
	// Lines read "...: tracing_mark_write: uevtest:all: n=..." (or an
	// address instead of tracing_mark_write on a kernel without KALLSYMS,
	// such as the VM's).
	lines := traceEntries(t, ft.Dir(), "uevtest:all")
	if len(lines) != n {
		t.Errorf("ftrace saw %d events, want %d", len(lines), n)
	}
	for i, l := range lines {
		if want := fmt.Sprintf(` n=%d, code=%d, msg="msg %d"`, i, -i, i); l != want {
			t.Errorf("ftrace entry %d: %q, want %q", i, l, want)
			break
		}
	}
	if n, err := ft.Errors(); n != 0 {
		t.Errorf("ftrace: %d write errors: %v", n, err)
	}
	var fromRing [][]byte
	var buf []byte
	for {
		_, pkt, err := rd.Next(buf)
		if err == ring.ErrEmpty {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		buf = pkt
		if err := ctf.Events(pkt, ut.Events(), func(e ctf.Event) bool {
			if e.ID == sid {
				fromRing = append(fromRing, bytes.Clone(e.Payload))
			}
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(fromRing) != n {
		t.Errorf("ring saw %d events, want %d (lost %d)", len(fromRing), n, ut.Lost())
	}
	for i := range min(len(fromRing), len(cb)) {
		if !bytes.Equal(fromRing[i], cb[i]) {
			t.Errorf("ring event %d: % x, want % x", i, fromRing[i], cb[i])
			break
		}
	}
	if ue != nil {
		got := traceEntries(t, ueRoot, ue.Name())
		if len(got) != n {
			t.Errorf("user_events saw %d events, want %d", len(got), n)
		}
		for i, l := range got {
			want := fmt.Sprintf(" n=0x%x (%d) code=0x%x (%d) msg=msg %d", i, i, uint32(-int32(i)), -i, i)
			if l != want {
				t.Errorf("user_events entry %d: %q, want %q", i, l, want)
				break
			}
		}
	}
}
