package tracedir

import (
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/usertrace/usertrace/catalog"
)

// TimeFormat chooses how [WriteText] writes an event's time.
type TimeFormat int

const (
	// TimeDate writes the wall-clock date and time: [2026-11-25 13:31:02.123456789].
	TimeDate TimeFormat = iota
	// TimeClock writes the wall-clock time of day: [13:31:02.123456789].
	TimeClock
	// TimeUnix writes seconds since the Unix epoch: [1795613462.123456789].
	TimeUnix
	// TimeRaw writes the trace clock's raw value as recorded (TSC ticks,
	// or CLOCK_MONOTONIC ns in traces whose clock runs at 1 GHz), like
	// babeltrace2 --clock-cycles: [81234567890123].
	TimeRaw
)

// TextOptions configure [WriteText] and [WriteJSON]. The zero value writes
// every event with its local date and time and its delta.
type TextOptions struct {
	Time TimeFormat
	// Location is the time zone of TimeDate and TimeClock; nil means
	// time.Local.
	Location *time.Location
	// NoDelta leaves out the "(+s.nnnnnnnnn)" time since the previous line.
	NoDelta bool
	// Events keeps only events whose "provider:name" matches one of these
	// globs (path.Match syntax: *, ?, [a-z]); none keeps every event.
	Events []string
}

// Match returns a filter for [Reader.Filter] that keeps events whose
// "provider:name" matches one of the globs, or nil when there are none. It
// fails for a malformed glob.
func Match(globs []string) (func(*catalog.Event) bool, error) {
	if len(globs) == 0 {
		return nil, nil
	}
	for _, g := range globs {
		if _, err := path.Match(g, ""); err != nil {
			return nil, fmt.Errorf("event pattern %q: %w", g, err)
		}
	}
	return func(e *catalog.Event) bool {
		name := e.FullName()
		for _, g := range globs {
			if ok, _ := path.Match(g, name); ok {
				return true
			}
		}
		return false
	}, nil
}

// OpenAll opens the traces at or under each of paths (a trace directory or
// a directory holding some, as [Find] sees them). It fails if a path holds
// no trace, or if one does not open; then nothing stays open.
func OpenAll(paths ...string) ([]*Trace, error) {
	var traces []*Trace
	fail := func(err error) ([]*Trace, error) {
		for _, t := range traces {
			t.Close()
		}
		return nil, err
	}
	for _, p := range paths {
		dirs, err := Find(p)
		if err != nil {
			return fail(err)
		}
		if len(dirs) == 0 {
			return fail(fmt.Errorf("open traces: no usertrace trace directory at or under %s (one holds metadata and %s/%s)", p, SidecarDir, CatalogFile))
		}
		for _, d := range dirs {
			t, err := Open(d)
			if err != nil {
				return fail(err)
			}
			traces = append(traces, t)
		}
	}
	return traces, nil
}

// bufSize is the output buffer: one write per bufSize bytes of text.
const bufSize = 256 << 10

// WriteText writes the events of the traces at or under dirs (see
// [OpenAll]) to w as text, one line per event, merged in time order:
//
//	[2026-11-25 13:31:02.123456789] (+0.000001234) app/pid provider:name: field=value, ...
//
// The payload is written as catalog.Record.AppendText writes it. The first
// line's delta is "(+?.?????????)". When a packet shows that the writer
// discarded events, a line says how many, before that packet's events:
//
//	[2026-11-25 13:31:02.123456789] app/pid (12 events lost in shard 1)
//
// Corrupt packets are skipped and counted in the returned Stats, with the
// first errors; they are not an error of WriteText, which returns errors
// from OpenAll, a malformed glob, reading the files, and w.
func WriteText(w io.Writer, opts TextOptions, dirs ...string) (Stats, error) {
	keep, err := Match(opts.Events)
	if err != nil {
		return Stats{}, fmt.Errorf("write text: %w", err)
	}
	traces, err := OpenAll(dirs...)
	if err != nil {
		return Stats{}, fmt.Errorf("write text: %w", err)
	}
	defer closeAll(traces)
	r := NewReader(traces...)
	r.Filter(keep)
	tw := newTextWriter(w, opts)
	// One goroutine: reading is now about a third of the time, less
	// than the pipeline's copy of each event cost (pipeline.go).
	for r.Next() {
		if err := tw.event(r.Event()); err != nil {
			return r.Stats(), fmt.Errorf("write text: %w", err)
		}
	}
	if err := tw.flush(); err != nil {
		return r.Stats(), fmt.Errorf("write text: %w", err)
	}
	if err := r.Err(); err != nil {
		return r.Stats(), fmt.Errorf("write text: %w", err)
	}
	return r.Stats(), nil
}

func closeAll(traces []*Trace) {
	for _, t := range traces {
		t.Close()
	}
}

// textWriter formats events into one big buffer, written out when full.
type textWriter struct {
	w     io.Writer
	opts  TextOptions
	loc   *time.Location
	buf   []byte
	plans map[planKey]*textPlan

	// The last event's plan: the common case of runs of one event of one
	// trace skips the map.
	lastKey  planKey
	lastPlan *textPlan

	prev     int64 // wall time of the previous line
	havePrev bool

	// The text of the second cachedSec, as TimeDate or TimeClock write it:
	// only the nanoseconds change within a second.
	cachedSec int64
	secText   []byte
	// The digits of the microsecond cachedUs of cachedSec, six ASCII
	// digits in the low bytes.
	cachedUs int64
	usText   uint64
}

func newTextWriter(w io.Writer, opts TextOptions) *textWriter {
	loc := opts.Location
	if loc == nil {
		loc = time.Local
	}
	return &textWriter{w: w, opts: opts, loc: loc, buf: make([]byte, 0, bufSize+4096),
		plans: make(map[planKey]*textPlan), cachedSec: -1 << 63}
}

type planKey struct {
	t *Trace
	e *catalog.Event
}

// plan returns the plan of e in trace t; its lead is "app/pid ".
func (tw *textWriter) plan(t *Trace, e *catalog.Event) *textPlan {
	k := planKey{t, e}
	if k == tw.lastKey {
		return tw.lastPlan
	}
	p := tw.plans[k]
	if p == nil {
		p = compilePlan(string(t.label)+" ", e)
		tw.plans[k] = p
	}
	tw.lastKey, tw.lastPlan = k, p
	return p
}

func (tw *textWriter) event(e *Event) error {
	b := tw.appendTime(tw.buf, e)
	if e.Desc == nil {
		b = append(b, e.Trace.label...)
		b = append(b, " ("...)
		b = appendUint(b, e.Lost)
		b = append(b, " events lost in shard "...)
		b = appendUint(b, uint64(e.Shard))
		b = append(b, ")\n"...)
	} else {
		if !tw.opts.NoDelta {
			b = tw.appendDelta(b, e.Wall)
		}
		b = tw.plan(e.Trace, e.Desc).appendText(b, e.Desc, e.Payload)
		b = append(b, '\n')
	}
	tw.buf = b
	if len(b) >= bufSize {
		return tw.flush()
	}
	return nil
}

func (tw *textWriter) flush() error {
	if len(tw.buf) == 0 {
		return nil
	}
	_, err := tw.w.Write(tw.buf)
	tw.buf = tw.buf[:0]
	return err
}

// floorDiv splits ns since the epoch into seconds and nanoseconds (0..1e9).
func floorDiv(ns int64) (int64, int64) {
	s, n := ns/1e9, ns%1e9
	if n < 0 {
		s, n = s-1, n+1e9
	}
	return s, n
}

// appendTime writes "[time] ".
func (tw *textWriter) appendTime(b []byte, e *Event) []byte {
	switch tw.opts.Time {
	case TimeRaw:
		b = appendUint(append(b, '['), e.Timestamp)
		return append(b, ']', ' ')
	case TimeUnix:
		s, ns := floorDiv(e.Wall)
		b = append(b, '[')
		if s < 0 {
			b = append(b, '-')
			s = -s
		}
		b = appendUint(b, uint64(s))
		b = append9(append(b, '.'), uint64(ns))
		return append(b, ']', ' ')
	}
	s, ns := floorDiv(e.Wall)
	if s != tw.cachedSec {
		t := time.Unix(s, 0).In(tw.loc)
		layout := "[2006-01-02 15:04:05."
		if tw.opts.Time == TimeClock {
			layout = "[15:04:05."
		}
		tw.secText = t.AppendFormat(tw.secText[:0], layout)
		tw.cachedSec = s
		tw.cachedUs = -1
	}
	// The microseconds' six digits are those of the previous line in a
	// dense trace: only the last three are new.
	us := ns / 1000 // ns in [0, 1e9)
	lo := ns - us*1000
	if us != tw.cachedUs {
		tw.cachedUs = us
		tw.usText = digits8(uint32(us))>>16 + asciiZeros // 6 digits, 2 spare bytes
	}
	b = append(b, tw.secText...)
	b = room(b, 16)
	l := len(b)
	d := b[l : l+16]
	binary.LittleEndian.PutUint64(d, tw.usText)
	binary.LittleEndian.PutUint32(d[6:], digits3[lo])
	d[9], d[10] = ']', ' '
	return b[:l+11]
}

// digits3 holds 0 to 999 as three ASCII digits in the low bytes of each
// entry, little-endian.
var digits3 = func() (t [1000]uint32) {
	for i := range t {
		t[i] = uint32('0'+i/100) | uint32('0'+i/10%10)<<8 | uint32('0'+i%10)<<16
	}
	return t
}()

// zeroDelta is "0.000000", little-endian.
const zeroDelta = '0' | '.'<<8 | '0'<<16 | '0'<<24 | '0'<<32 | '0'<<40 | '0'<<48 | '0'<<56

// appendDelta writes "(+s.nnnnnnnnn) ", the time since the previous line.
func (tw *textWriter) appendDelta(b []byte, wall int64) []byte {
	if !tw.havePrev {
		tw.prev, tw.havePrev = wall, true
		return append(b, "(+?.?????????) "...)
	}
	d := wall - tw.prev
	tw.prev = wall
	u, sign := uint64(d), byte('+')
	if d < 0 {
		u, sign = -u, '-'
	}
	if u < 1000 {
		// A dense trace: "(+0.000000nnn) ".
		b = room(b, 16)
		l := len(b)
		d := b[l : l+16]
		d[0], d[1] = '(', sign
		binary.LittleEndian.PutUint64(d[2:], zeroDelta)
		binary.LittleEndian.PutUint32(d[10:], digits3[u])
		d[13], d[14] = ')', ' '
		return b[:l+15]
	}
	if s := u / 1e9; s < 10 {
		// The common case: "(+s.nnnnnnnnn) " in place.
		ns := u - s*1e9
		b = room(b, 24)
		l := len(b)
		d := b[l : l+24]
		hi := ns / 1e8
		d[0], d[1], d[2], d[3], d[4] = '(', sign, byte(s)+'0', '.', byte(hi)+'0'
		binary.LittleEndian.PutUint64(d[5:], digits8(uint32(ns-hi*1e8))+asciiZeros)
		d[13], d[14] = ')', ' '
		return b[:l+15]
	}
	b = append(b, '(', sign)
	b = appendUint(b, u/1e9)
	b = append(b, '.')
	b = append9(b, u%1e9)
	return append(b, ") "...)
}
