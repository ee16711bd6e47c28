// Command usertrace records and views traces of programs instrumented with
// usertrace. Run `usertrace help` for the commands.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/usertrace/usertrace/client"
	"github.com/usertrace/usertrace/protocol"
)

const usage = `usertrace: record and view traces of Go programs instrumented with usertrace.

The one-command way (no daemon to start):

  usertrace record [-e PATTERN]... [-o DIR] -- CMD [ARGS...]
      run CMD with a private daemon, trace it and its children, and print a
      summary when it exits

With a standing daemon (usertraced):

  usertrace create [-o DIR] [--overwrite] [--subbuf-size N] [--num-subbuf N] [NAME]
  usertrace enable  [-s NAME] [-l LEVEL] PATTERN...    select events: glob on provider:event
  usertrace disable [-s NAME] PATTERN...
  usertrace start   [-s NAME]
  usertrace stop    [-s NAME]
  usertrace destroy [-s NAME]
  usertrace snapshot [-s NAME]      flight recorder (--overwrite): write what the
                                    rings hold now, keep recording
  usertrace list    [--json]        events of the connected programs
  usertrace status  [--json]        sessions and programs

Reading traces:

  usertrace view DIR...             a trace as text (babeltrace2 reads it too)

Sessions are named "default" unless given with -s. Patterns use glob syntax on
"provider:event": 'http:*', '*:request_*', '*'. LEVEL is one of emergency,
alert, critical, error, warning, notice, info, debug: events at that level or
more severe.

Global flags (before the command):
  -d DIR   the daemon directory (default $USERTRACE_DIR, else /run/usertrace as
           root, else $XDG_RUNTIME_DIR/usertrace)

Examples:
  usertrace record -- go run ./examples/hello
  usertraced & usertrace create && usertrace enable 'http:*' && usertrace start
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// exitError carries a specific exit status (record exits with its command's).
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func run(args []string, stdout, stderr io.Writer) int {
	global := flag.NewFlagSet("usertrace", flag.ContinueOnError)
	global.SetOutput(stderr)
	dir := global.String("d", client.DefaultDir(), "daemon directory")
	global.Usage = func() { fmt.Fprint(stderr, usage) }
	if err := global.Parse(args); err != nil {
		return 2
	}
	args = global.Args()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, args := args[0], args[1:]
	var err error
	switch cmd {
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	case "record":
		err = record(args, stdout, stderr)
	case "view":
		err = view(args, stdout, stderr)
	case "create", "enable", "disable", "start", "stop", "destroy", "list", "status", "snapshot":
		err = control(*dir, cmd, args, stdout, stderr)
	default:
		fmt.Fprintf(stderr, "usertrace: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	case errors.Is(err, flag.ErrHelp):
		return 0
	}
	fmt.Fprintf(stderr, "usertrace %s: %v\n", cmd, err)
	return 1
}

// control runs the commands that talk to a standing daemon.
func control(dir, cmd string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usertrace "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	session := fs.String("s", "default", "session name")
	var (
		out       *string
		overwrite *bool
		subSize   *int
		numSub    *int
		level     *string
		asJSON    *bool
	)
	switch cmd {
	case "create":
		out = fs.String("o", "", "trace directory (default: under the daemon's output root)")
		overwrite = fs.Bool("overwrite", false, "flight-recorder mode: keep the newest data when full")
		subSize = fs.Int("subbuf-size", 0, "bytes per sub-buffer, a power of 2 (default 256 KiB)")
		numSub = fs.Int("num-subbuf", 0, "sub-buffers per shard, a power of 2 (default 16)")
	case "enable":
		level = fs.String("l", "", "only events at this level or more severe")
	case "list", "status":
		asJSON = fs.Bool("json", false, "print JSON")
	}
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	c, err := client.Dial(dir)
	if err != nil {
		return err
	}
	defer c.Close()
	req := protocol.Request{Op: cmd, Session: *session}
	switch cmd {
	case "create":
		if fs.NArg() > 1 {
			return fmt.Errorf("one session name at most, got %q", fs.Args())
		}
		if fs.NArg() == 1 {
			req.Session = fs.Arg(0)
		}
		req.Output = *out
		req.Ring = protocol.RingConfig{Overwrite: *overwrite, SubSize: *subSize, NumSub: *numSub}
		r, err := c.Do(req)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "session %s created; traces go to %s\n", r.Session.Name, r.Session.Output)
		return nil
	case "enable", "disable":
		if fs.NArg() == 0 {
			return fmt.Errorf("give at least one pattern, such as 'http:*' or '*'")
		}
		for _, p := range fs.Args() {
			if p != "*" && !strings.Contains(p, ":") {
				return fmt.Errorf("pattern %q matches no provider:event name; did you mean '%s:*'?", p, p)
			}
		}
		for _, p := range fs.Args() {
			req.Pattern = protocol.Pattern{Glob: p}
			if level != nil {
				req.Pattern.Level = *level
			}
			if _, err := c.Do(req); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%sd %s in session %s\n", cmd, p, req.Session)
		}
		return nil
	case "list":
		r, err := c.Do(req)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, r.Events)
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PID\tAPP\tEVENT\tLEVEL\tFIELDS")
		for _, e := range r.Events {
			fmt.Fprintf(tw, "%d\t%s\t%s:%s\t%s\t%s\n", e.PID, e.App, e.Provider, e.Name, e.Level, e.Fields)
		}
		return tw.Flush()
	case "status":
		r, err := c.Do(req)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(stdout, struct {
				Sessions []protocol.SessionStatus `json:"sessions"`
				Apps     []protocol.AppStatus     `json:"apps"`
			}{r.Sessions, r.Apps})
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SESSION\tSTATE\tAPPS\tEVENTS\tBYTES\tLOST\tPATTERNS\tOUTPUT")
		for _, s := range r.Sessions {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n", s.Name, s.State, s.Apps, s.Events, s.Bytes, s.Discarded, patterns(s.Patterns), s.Output)
		}
		tw.Flush()
		fmt.Fprintln(stdout)
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PID\tAPP\tEVENTS\tSESSIONS")
		for _, a := range r.Apps {
			fmt.Fprintf(tw, "%d\t%s\t%d\t%d\n", a.PID, a.Name, a.Events, a.Sessions)
		}
		return tw.Flush()
	case "snapshot":
		r, err := c.Do(req)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "snapshot of session %s: %d events in %s\n", r.Session.Name, r.Session.Events, r.Path)
		return nil
	default: // start, stop, destroy
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments %q (name the session with -s)", fs.Args())
		}
		r, err := c.Do(req)
		if err != nil {
			return err
		}
		s := r.Session
		switch cmd {
		case "start":
			fmt.Fprintf(stdout, "session %s started: %s\n", s.Name, patterns(s.Patterns))
		default:
			done := map[string]string{"stop": "stopped", "destroy": "destroyed"}[cmd]
			fmt.Fprintf(stdout, "session %s %s: %d events, %d bytes, %d lost, from %d apps, in %s\n",
				s.Name, done, s.Events, s.Bytes, s.Discarded, s.Apps, s.Output)
		}
		return nil
	}
}

// parseInterspersed parses flags wherever they stand among the arguments
// ("enable 'http:*' -s web" as well as "enable -s web 'http:*'"); the
// arguments that are not flags stay in fs.Args(), in order. "--" ends flags.
func parseInterspersed(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if len(args) > len(rest) && args[len(args)-len(rest)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func patterns(ps []protocol.Pattern) string {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteByte(' ')
		}
		if p.Exclude {
			b.WriteByte('!')
		}
		b.WriteString(p.Glob)
		if p.Level != "" {
			b.WriteString("@" + p.Level)
		}
	}
	return b.String()
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
