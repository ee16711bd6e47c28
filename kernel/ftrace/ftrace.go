// Package ftrace is a kernel tracer for usertrace: it writes each event it is
// attached to into the ftrace ring buffer through tracefs, where it sits
// beside the kernel's own events (sched, irq, syscalls) in one timeline.
//
// Two modes:
//
//   - [Text] writes one line per event to trace_marker, formatted by
//     [catalog.Record.AppendText]. It reads in the trace file as
//
//     app-42 [001] ..... 12.345678: tracing_mark_write: http:request_done: method="GET", status=200
//
//   - [Raw] writes to trace_marker_raw: the event's catalog id as a 4-byte
//     native-endian integer, then the payload unchanged (layout in package
//     catalog). A consumer decodes it with the process's catalog. The trace
//     file shows it as "# <id in hex> buf: <bytes in hex>".
//
// A Tracer writes into the top-level buffer or into a tracefs instance
// (instances/NAME), which it can create and remove. Attach it like any
// tracer, to one point ([Tracer.Attach]) or to every event matching a
// pattern, now and later ([Tracer.AttachAll]).
//
// Each event costs one write system call (about 1.5 µs on the development
// machine): use the user-space tracer (package ust) for volume, and this one
// to put events in the kernel's timeline. Formatting allocates nothing.
package ftrace

import (
	"errors"
	"fmt"
	"os"
	"path"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/tracer"
)

// Mode chooses what a Tracer writes.
type Mode uint8

const (
	// Text writes a line of text per event to trace_marker.
	Text Mode = iota
	// Raw writes the event id and the binary payload to trace_marker_raw.
	Raw
)

func (m Mode) String() string {
	switch m {
	case Text:
		return "text"
	case Raw:
		return "raw"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// MaxWrite is the most the kernel takes in one trace_marker write
// (TRACE_MARKER_MAX_SIZE in kernel/trace/trace.c): longer text lines are
// truncated by the kernel, longer raw records are refused and counted by
// [Tracer.Errors].
const MaxWrite = 4096

// Config configures a Tracer. The zero Config writes text into the
// top-level buffer of the tracefs found by [Root].
type Config struct {
	Mode Mode
	// Instance names a tracefs instance (Root/instances/NAME) to write to;
	// "" writes to the top-level buffer.
	Instance string
	// CreateInstance creates the instance if it does not exist. Close
	// removes it again if this tracer created it.
	CreateInstance bool
	// Root is the tracefs mount point; "" means [Root]'s answer.
	Root string
}

// Tracer writes events into ftrace. It is safe for concurrent use; Trace is
// called by the tracer package on emitting goroutines.
type Tracer struct {
	mode    Mode
	dir     string
	created bool
	fd      int

	// inflight counts Trace calls between their closed check and the end of
	// their write; Close sets closed, then waits for inflight to drain before
	// it closes fd. Otherwise a Trace that loaded its sink list before Close
	// detached it could write to a closed (or reused) descriptor.
	inflight atomic.Int64
	closed   atomic.Bool

	errs    atomic.Uint64
	lastErr atomic.Pointer[error]

	mu   sync.Mutex // guards atts, subs
	atts []*tracer.Attachment
	subs []*tracer.Subscription
}

// New opens the marker file of the chosen mode in the chosen buffer. It
// returns [ErrNoTracefs] (wrapped) when tracefs is not mounted, and an error
// naming the path when the instance does not exist and may not be created.
func New(cfg Config) (*Tracer, error) {
	if cfg.Mode != Text && cfg.Mode != Raw {
		return nil, fmt.Errorf("ftrace: unknown mode %d", cfg.Mode)
	}
	root := cfg.Root
	if root == "" {
		var err error
		if root, err = Root(); err != nil {
			return nil, err
		}
	} else if !isTracefs(root) {
		return nil, fmt.Errorf("ftrace: %s is not a tracefs mount: %w", root, ErrNoTracefs)
	}
	dir, err := instanceDir(root, cfg.Instance)
	if err != nil {
		return nil, err
	}
	t := &Tracer{mode: cfg.Mode, dir: dir, fd: -1}
	if cfg.Instance != "" {
		if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) && cfg.CreateInstance {
			if err := os.Mkdir(dir, 0o755); err != nil {
				return nil, fmt.Errorf("ftrace: create instance: %w", err)
			}
			t.created = true
		} else if err != nil {
			return nil, fmt.Errorf("ftrace: instance %q: %w (set Config.CreateInstance to create it)", cfg.Instance, err)
		}
	}
	name := "trace_marker"
	if cfg.Mode == Raw {
		name = "trace_marker_raw"
	}
	fd, err := unix.Open(path.Join(dir, name), unix.O_WRONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.removeInstance()
		return nil, fmt.Errorf("ftrace: open %s: %w", path.Join(dir, name), err)
	}
	t.fd = fd
	return t, nil
}

// Dir returns the directory of the tracer's buffer: the tracefs root or the
// instance directory. Its trace and trace_pipe files show what was written.
func (t *Tracer) Dir() string { return t.dir }

// Mode returns the tracer's mode.
func (t *Tracer) Mode() Mode { return t.mode }

// stackText is the size of the buffer Trace formats into, on its own stack
// (it does not escape: unix.Write keeps no reference). Longer lines move to
// the heap; typical events take 60 to 200 bytes.
const stackText = 1024

// Trace writes one event. Errors (a full or disabled buffer is not one; the
// kernel drops silently then) are counted by [Tracer.Errors]. It does not
// allocate.
func (t *Tracer) Trace(r catalog.Record) {
	t.inflight.Add(1)
	defer t.inflight.Add(-1)
	if t.closed.Load() {
		return
	}
	var buf [stackText]byte
	b := buf[:0]
	if t.mode == Text {
		b = r.AppendText(b)
		b = append(b, '\n')
	} else {
		var id uint32
		if r.Event != nil {
			id = r.Event.ID
		}
		// trace_marker_raw wants the id as the kernel's unsigned int, in
		// native byte order (struct raw_data_entry).
		b = append(b, byte(id), byte(id>>8), byte(id>>16), byte(id>>24))
		b = append(b, r.Payload...)
	}
	t.write(b)
}

func (t *Tracer) write(b []byte) {
	for {
		_, err := write(t.fd, b)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.errs.Add(1)
			e := fmt.Errorf("ftrace: write %d bytes to %s: %w", len(b), t.dir, err)
			t.lastErr.Store(&e)
		}
		return
	}
}

// Errors returns how many writes failed, and the last failure.
func (t *Tracer) Errors() (uint64, error) {
	n := t.errs.Load()
	if p := t.lastErr.Load(); p != nil {
		return n, *p
	}
	return n, nil
}

// ErrClosed is returned when attaching a closed tracer.
var ErrClosed = errors.New("ftrace: tracer closed")

// Attach attaches the tracer to one point. Close detaches it.
func (t *Tracer) Attach(p *tracer.Point) (*tracer.Attachment, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return nil, ErrClosed
	}
	a, err := p.Attach(t)
	if err != nil {
		return nil, err
	}
	t.atts = append(t.atts, a)
	return a, nil
}

// AttachAll attaches the tracer to every event whose "provider:name"
// matches pattern ([path.Match] syntax: "http:*", "*:request_*", "*"), now
// and as they are defined, until Close.
func (t *Tracer) AttachAll(pattern string) error {
	m, err := Matcher(pattern)
	if err != nil {
		return err
	}
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		return ErrClosed
	}
	t.mu.Unlock()
	// Subscribe calls back with t.mu free: Attach takes it.
	s := tracer.Subscribe(func(p *tracer.Point) {
		if m(p.Desc()) {
			t.Attach(p) // only fails when closed or at 2^24 attachments: nothing to do then
		}
	})
	t.mu.Lock()
	t.subs = append(t.subs, s)
	closed := t.closed.Load()
	t.mu.Unlock()
	if closed {
		s.Cancel()
	}
	return nil
}

// Matcher returns a function reporting whether an event's "provider:name"
// matches the glob pattern ([path.Match] syntax).
func Matcher(pattern string) (func(*catalog.Event) bool, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return nil, fmt.Errorf("ftrace: bad pattern %q: %w", pattern, err)
	}
	return func(e *catalog.Event) bool {
		ok, _ := path.Match(pattern, e.FullName())
		return ok
	}, nil
}

// Close detaches the tracer from every point, waits for writes in progress,
// closes the marker file and removes the instance if New created it.
func (t *Tracer) Close() error {
	t.mu.Lock()
	if t.closed.Swap(true) {
		t.mu.Unlock()
		return nil
	}
	subs, atts := t.subs, t.atts
	t.subs, t.atts = nil, nil
	t.mu.Unlock()
	for _, s := range subs {
		s.Cancel()
	}
	for _, a := range atts {
		a.Detach()
	}
	for t.inflight.Load() != 0 { // pairs with the Add(1) in Trace
		runtime.Gosched()
		time.Sleep(time.Microsecond)
	}
	err := unix.Close(t.fd)
	if err != nil {
		err = fmt.Errorf("ftrace: close: %w", err)
	}
	return errors.Join(err, t.removeInstance())
}

func (t *Tracer) removeInstance() error {
	if !t.created {
		return nil
	}
	t.created = false
	if err := unix.Rmdir(t.dir); err != nil {
		return fmt.Errorf("ftrace: remove instance %s: %w", t.dir, err)
	}
	return nil
}
