package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/usertrace/usertrace/tracedir"
)

// view prints traces as text (or JSON lines), merged in time order.
func view(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("usertrace view", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var events multiFlag
	fs.Var(&events, "e", "only events matching this glob on provider:event (repeatable)")
	asJSON := fs.Bool("json", false, "one JSON object per event instead of text")
	timeFmt := fs.String("time", "date", "timestamps as date (local date and time), clock (time of day), unix (seconds.nanoseconds) or raw (clock ticks)")
	utc := fs.Bool("utc", false, "dates and times in UTC rather than local time")
	noDelta := fs.Bool("no-delta", false, "leave out the time since the previous event")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: usertrace view [flags] DIR...\n\nPrints the traces under each DIR (a session's output or one app's trace) merged in time order.\n\n")
		fs.PrintDefaults()
	}
	if err := parseInterspersed(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return errors.New("give a trace directory, such as the one usertrace record printed")
	}
	opts := tracedir.TextOptions{NoDelta: *noDelta, Events: events}
	switch *timeFmt {
	case "date":
		opts.Time = tracedir.TimeDate
	case "clock":
		opts.Time = tracedir.TimeClock
	case "unix":
		opts.Time = tracedir.TimeUnix
	case "raw":
		opts.Time = tracedir.TimeRaw
	default:
		return fmt.Errorf("-time %q: want date, clock, unix or raw", *timeFmt)
	}
	if *utc {
		opts.Location = time.UTC
	}
	w := bufio.NewWriterSize(stdout, 256<<10)
	write := tracedir.WriteText
	if *asJSON {
		write = tracedir.WriteJSON
	}
	st, err := write(w, opts, fs.Args()...)
	if ferr := w.Flush(); err == nil && ferr != nil && !errors.Is(ferr, os.ErrClosed) {
		err = ferr
	}
	if err != nil {
		return err
	}
	if st.Traces == 0 {
		return fmt.Errorf("no usertrace trace under %v", fs.Args())
	}
	if st.Corrupt > 0 {
		fmt.Fprintf(stderr, "usertrace view: skipped %d corrupt packets (%d bytes)\n", st.Corrupt, st.SkippedBytes)
		for _, e := range st.Errors {
			fmt.Fprintf(stderr, "  %v\n", e)
		}
	}
	return nil
}
