package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/usertrace/usertrace/agent"
	"github.com/usertrace/usertrace/daemon"
	"github.com/usertrace/usertrace/protocol"
)

// multiFlag collects a repeated string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// record runs a command under a private, embedded daemon: only the command
// and its children see it (they find it through $USERTRACE_DAEMONS), and
// nothing else needs to be running.
func record(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usertrace record", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var pats multiFlag
	fs.Var(&pats, "e", "events to record: glob on provider:event (repeatable; default '*')")
	level := fs.String("l", "", "only events at this level or more severe (emergency ... debug)")
	out := fs.String("o", "", "trace directory (default ./usertrace-CMD-DATE-TIME)")
	subSize := fs.Int("subbuf-size", 0, "bytes per sub-buffer, a power of 2 (default 256 KiB)")
	numSub := fs.Int("num-subbuf", 0, "sub-buffers per shard, a power of 2 (default 16)")
	wait := fs.Duration("wait", 3*time.Second, "how long the command's first event may wait for tracing to be set up")
	quiet := fs.Bool("q", false, "print no summary")
	verbose := fs.Bool("v", false, "log the embedded daemon's work to stderr")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: usertrace record [flags] -- CMD [ARGS...]\n\nRuns CMD with a private daemon and records its events (and its children's).\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		fs.Usage()
		return errors.New("no command given: usertrace record -- CMD [ARGS...]")
	}
	if len(pats) == 0 {
		pats = multiFlag{"*"}
	}
	if *out == "" {
		*out = fmt.Sprintf("usertrace-%s-%s", filepath.Base(argv[0]), time.Now().Format("20060102-150405"))
	}

	sockDir, err := os.MkdirTemp("", "usertrace-record-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(sockDir)
	cfg := daemon.Config{Dir: sockDir}
	if *verbose {
		cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	d, err := daemon.New(cfg)
	if err != nil {
		return err
	}
	go d.Serve()
	defer d.Close()

	do := func(req protocol.Request) (protocol.Response, error) {
		req.Session = "record"
		r := d.Do(req)
		if r.Error != nil {
			return r, r.Error
		}
		return r, nil
	}
	if _, err := do(protocol.Request{Op: protocol.OpCreate, Output: *out, Ring: protocol.RingConfig{SubSize: *subSize, NumSub: *numSub}}); err != nil {
		return err
	}
	for _, p := range pats {
		if _, err := do(protocol.Request{Op: protocol.OpEnable, Pattern: protocol.Pattern{Glob: p, Level: *level}}); err != nil {
			return err
		}
	}
	if _, err := do(protocol.Request{Op: protocol.OpStart}); err != nil {
		return err
	}

	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	cmd.Env = append(os.Environ(),
		agent.EnvDirs+"="+sockDir,
		agent.EnvWait+"="+wait.String(),
	)
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", argv[0], err)
	}
	// Now that the command has started at its normal priority, let the
	// embedded daemon drain ahead of it (best effort: needs root).
	daemon.RaisePriority()
	// The command gets our terminal's signals; we wait for it to end.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		for s := range sig {
			cmd.Process.Signal(s)
		}
	}()
	waitErr := cmd.Wait()
	signal.Stop(sig)
	close(sig)
	elapsed := time.Since(start)

	r, err := do(protocol.Request{Op: protocol.OpStop})
	if err != nil {
		return err
	}
	d.Close()
	if !*quiet {
		s := r.Session
		rate := float64(s.Events) / elapsed.Seconds()
		fmt.Fprintf(stderr, "usertrace: %d events (%s, %d lost) from %d program(s) in %s (%.0f events/s)\n",
			s.Events, byteSize(s.Bytes), s.Discarded, s.Apps, elapsed.Round(time.Millisecond), rate)
		fmt.Fprintf(stderr, "usertrace: trace in %s — view it with: usertrace view %s\n", s.Output, s.Output)
	}
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return exitError{128 + int(ws.Signal())}
		}
		return exitError{ee.ExitCode()}
	}
	return waitErr
}

func byteSize(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}
