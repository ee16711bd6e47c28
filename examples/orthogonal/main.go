// Command orthogonal fires one event into three tracers at once: an
// in-process callback, the user-space ring tracer (package ust) and ftrace
// (package kernel/ftrace, in a tracefs instance of its own). The call site is
// the same one-line Emit for all three; it knows nothing of tracers.
//
//	sudo go run ./examples/orthogonal   # ftrace needs root and tracefs
//
// Without tracefs it runs with the two other tracers and says why.
package main

import (
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"syscall"

	"github.com/usertrace/usertrace"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/kernel/ftrace"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/ust"
)

type Login struct {
	User string
	OK   bool
}

var login = usertrace.NewEvent[Login]("auth", "login")

func main() {
	// 1. An in-process callback.
	var seen atomic.Int64
	a, _ := login.Attach(usertrace.TracerFunc(func(usertrace.Record) { seen.Add(1) }))
	defer a.Detach()

	// 2. The user-space tracer: events go into a shared-memory ring that a
	// daemon (or any reader holding its memfd) drains.
	rt, err := ust.New(ust.Config{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ust:", err)
		os.Exit(1)
	}
	defer rt.Close()
	if _, err := rt.Attach(login.Point()); err != nil {
		fmt.Fprintln(os.Stderr, "ust:", err)
		os.Exit(1)
	}

	// 3. ftrace: events land in the kernel's trace buffer.
	ft, err := ftrace.New(ftrace.Config{Instance: "usertrace-example", CreateInstance: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "ftrace not available, running without it:", err)
	} else {
		defer ft.Close()
		if _, err := ft.Attach(login.Point()); err != nil {
			fmt.Fprintln(os.Stderr, "ftrace:", err)
		}
	}

	for _, u := range []string{"ada", "grace", "linus"} {
		login.Emit(Login{User: u, OK: u != "linus"})
	}

	fmt.Printf("callback saw %d events\n", seen.Load())

	// Read the ring back as a daemon would: through its memfd (here a
	// duplicate, since ring.Open takes its file over).
	rt.Flush()
	fd, err := syscall.Dup(int(rt.Ring().File().Fd()))
	if err != nil {
		panic(err)
	}
	r, err := ring.Open(os.NewFile(uintptr(fd), "ring"))
	if err != nil {
		panic(err)
	}
	defer r.Close()
	buf := make([]byte, r.Info().SubSize)
	for {
		_, pkt, err := r.Next(buf)
		if err != nil {
			break // ring.ErrEmpty: all read
		}
		ctf.Events(pkt, rt.Events(), func(e ctf.Event) bool {
			rec := usertrace.Record{Event: rt.Events()[e.ID], Payload: e.Payload}
			fmt.Printf("ring: t=%d %s\n", e.Timestamp, rec.AppendText(nil))
			return true
		})
	}
	if ft != nil {
		b, err := os.ReadFile(ft.Dir() + "/trace")
		if err == nil {
			for _, line := range strings.Split(string(b), "\n") {
				if strings.Contains(line, "auth:login") {
					fmt.Println("ftrace:", strings.TrimSpace(line))
				}
			}
		}
	}
}
