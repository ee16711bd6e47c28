// Command usertraced is the usertrace session daemon. It accepts the agents
// of instrumented programs on DIR/agent.sock and clients such as the
// usertrace CLI on DIR/control.sock, and writes traces as CTF 1.8
// directories that babeltrace2 and Trace Compass read.
//
//	usertraced [-d DIR] [-o OUTPUT_ROOT] [-parent DIR] [-v]
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/usertrace/usertrace/client"
	"github.com/usertrace/usertrace/daemon"
)

func main() {
	fs := flag.NewFlagSet("usertraced", flag.ExitOnError)
	dir := fs.String("d", client.DefaultDir(), "daemon directory: sockets live here; apps find it through $USERTRACE_DAEMONS")
	out := fs.String("o", "", "where sessions created without -o write their traces (default DIR/traces)")
	verbose := fs.Bool("v", false, "log connections and sessions to stderr")
	keepNice := fs.Bool("keep-priority", false, "do not raise the daemon's priority (by default, when allowed, it runs at nice -5 and drains busy rings from real-time threads, SCHED_FIFO 1, so that draining keeps up with programs that keep every CPU busy)")
	parent := fs.String("parent", os.Getenv("USERTRACE_PARENT"), "directory of the daemon of the enclosing container: forward every app there too (default $USERTRACE_PARENT)")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), `usertraced: the usertrace session daemon.

Apps instrumented with usertrace connect to it by themselves: as root they look
in /run/usertrace, otherwise in $XDG_RUNTIME_DIR/usertrace, or in the
directories listed in $USERTRACE_DAEMONS. Drive it with the usertrace CLI.
SIGTERM or SIGINT stops every session and flushes everything committed.

Usage: usertraced [flags]

`)
		fs.PrintDefaults()
	}
	fs.Parse(os.Args[1:])
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	if !*keepNice {
		if err := daemon.RaisePriority(); err != nil {
			log.Info("running at normal priority", "err", err)
		}
	}
	d, err := daemon.New(daemon.Config{Dir: *dir, OutputRoot: *out, Parent: *parent, NoRealtime: *keepNice, Log: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, "usertraced:", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		log.Info("stopping: flushing every session")
		d.Close()
	}()
	log.Info("listening", "dir", *dir)
	err = d.Serve()
	d.Close() // waits for the flush started by the signal
	if err != nil {
		fmt.Fprintln(os.Stderr, "usertraced:", err)
		os.Exit(1)
	}
}
