// Package userevents is a kernel tracer for usertrace on Linux user_events
// (Linux 6.4 and later, CONFIG_USER_EVENTS): each event it is attached to
// becomes a tracepoint of the kernel (tracefs events/user_events/NAME), which
// ftrace, perf and eBPF enable like any other.
//
// Attaching registers the event with DIAG_IOCSREG on tracefs's
// user_events_data, giving the kernel the address of the event's enable word
// and [enable.KernelBit]: from then on the kernel sets and clears bit 31 in
// our memory as its own tracers enable and disable the event, with no call
// from this process. The tracer is attached with Point.AttachGated(t,
// enable.KernelMask), so it is called only while that bit is set, and each
// call is one writev: the write index the kernel handed back, then the
// payload laid out as user_events wants it (see format.go and
// docs/kernel-tracers.md for the field mapping).
//
// A process may register an enable word with one bit once: one userevents
// Tracer per event per process ([ErrAlreadyRegistered] otherwise).
//
// Errors: [ErrNotSupported] when the kernel has no user_events,
// [ErrFormatChanged] when an event of the same name exists with other fields.
package userevents

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/enable"
	"github.com/usertrace/usertrace/kernel/ftrace"
	"github.com/usertrace/usertrace/tracer"
)

// ErrNotSupported is returned when the running kernel has no user_events
// with the 6.4 ABI.
var ErrNotSupported = errors.New("userevents: Linux user_events is not available: it needs Linux 6.4 or later built with CONFIG_USER_EVENTS (Debian's kernels are not), and tracefs mounted")

// ErrFormatChanged is returned (wrapped) when the kernel already has an event
// of the same name with other fields: an older build of the program
// registered it, or it persists.
var ErrFormatChanged = errors.New("userevents: an event of this name is registered with another format")

// ErrAlreadyRegistered is returned when the event is already registered by
// a userevents Tracer of this process: the kernel takes one registration per
// enable word and bit.
var ErrAlreadyRegistered = errors.New("userevents: event already registered by this process")

// Config configures a Tracer. The zero Config registers events without
// flags, named by [DefaultName].
type Config struct {
	// Root is the tracefs mount point; "" means ftrace.Root's answer.
	Root string
	// Persist asks for USER_EVENT_REG_PERSIST: the event stays in tracefs
	// after the process closes it (needs CAP_PERFMON). Without permission or
	// on a kernel without the flag, events are registered without it.
	Persist bool
	// MultiFormat asks for USER_EVENT_REG_MULTI_FORMAT (Linux 6.10): an event
	// whose format changed gets a new tracepoint, user_events_multi/NAME.<id>,
	// instead of failing with ErrFormatChanged. On a kernel without the flag,
	// events are registered without it.
	MultiFormat bool
	// Name gives an event's user_events name; nil means DefaultName.
	Name func(*catalog.Event) string
}

// Tracer registers events with user_events and writes them while the kernel
// wants them. It is safe for concurrent use.
type Tracer struct {
	cfg  Config
	root string
	fd   int

	// inflight and closed guard fd against Close, as in package ftrace:
	// Close sets closed, waits for inflight to drain, then closes fd.
	inflight atomic.Int64
	closed   atomic.Bool

	errs    atomic.Uint64
	lastErr atomic.Pointer[error]
	dropped atomic.Uint64 // payloads too large to lay out

	mu   sync.Mutex // guards regs, subs; before registered.mu
	regs map[*tracer.Point]*Registration
	subs []*tracer.Subscription
}

// registered holds the enable words this process has registered, across
// tracers: the kernel refuses a second registration of an address and bit.
var registered struct {
	mu    sync.Mutex
	addrs map[uintptr]bool
}

// The kernel keeps registrations per thread, not per process: DIAG_IOCSREG
// attaches its state (struct user_event_mm, with the enablers that set our
// bits) to the calling task, threads cloned later share it, threads that
// already existed do not, and it is destroyed when the last task sharing it
// exits (kernel/trace/trace_events_user.c: current_user_event_mm,
// user_event_mm_remove). A Go program runs on threads it made long before,
// and a goroutine moves between them: DIAG_IOCSUNREG from another thread
// fails with ENOENT, and a registering thread that exits (a goroutine that
// ends while locked to it) silently stops the kernel from updating our bits.
// So every registration and unregistration of the process runs on one
// thread, owned by a goroutine that locks it and never ends.
var ctl struct {
	once sync.Once
	reqs chan func()
}

// onCtlThread runs f on the registration thread and returns when it is done.
func onCtlThread(f func()) {
	ctl.once.Do(func() {
		ctl.reqs = make(chan func())
		go func() {
			// Never unlocked and never returns: the thread must outlive every
			// registration (see ctl).
			runtime.LockOSThread()
			for f := range ctl.reqs {
				f()
			}
		}()
	})
	done := make(chan struct{})
	ctl.reqs <- func() { f(); close(done) }
	<-done
}

// New opens user_events_data. It returns an error wrapping [ErrNotSupported]
// when the kernel has no user_events, and
// ftrace.ErrNoTracefs when tracefs is not mounted.
func New(cfg Config) (*Tracer, error) {
	root := cfg.Root
	if root == "" {
		var err error
		if root, err = ftrace.Root(); err != nil {
			return nil, fmt.Errorf("%w (%w)", ErrNotSupported, err)
		}
	}
	data := filepath.Join(root, "user_events_data")
	// No probe for the ABI of Linux 5.18 to 6.3 (a status page instead of
	// enable addresses): it was only ever built with CONFIG_BROKEN.
	// user_events_status exists in both, so it proves nothing.
	fd, err := unix.Open(data, unix.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, fmt.Errorf("%w: no %s", ErrNotSupported, data)
	}
	if err != nil {
		return nil, fmt.Errorf("userevents: open %s: %w", data, err)
	}
	return &Tracer{cfg: cfg, root: root, fd: fd, regs: map[*tracer.Point]*Registration{}}, nil
}

// Root returns the tracefs directory the tracer uses.
func (t *Tracer) Root() string { return t.root }

// Registration is one event registered with user_events.
type Registration struct {
	t      *Tracer
	p      *tracer.Point
	l      *layout
	name   string
	flags  uint16
	index  uint32 // the write index: each write starts with it
	att    *tracer.Attachment
	closed bool // guarded by t.mu
}

// Name returns the event's user_events name.
func (r *Registration) Name() string { return r.name }

// System returns the tracefs events/ directory of the event: "user_events",
// or "user_events_multi" for a multi-format registration (whose tracepoint
// is then NAME.<hex id> there).
func (r *Registration) System() string {
	if r.flags&regMultiFormat != 0 {
		return multiSystemName
	}
	return systemName
}

// Format returns the description given to the kernel: "name field; ...".
func (r *Registration) Format() string { return r.l.desc }

// Persistent and MultiFormat report which flags the kernel took.
func (r *Registration) Persistent() bool  { return r.flags&regPersist != 0 }
func (r *Registration) MultiFormat() bool { return r.flags&regMultiFormat != 0 }

// Attach registers p's event with user_events and attaches the tracer,
// gated on the kernel bit. It returns [ErrFormatChanged] or
// [ErrAlreadyRegistered] (wrapped) as explained there, and an error naming
// the field when the event has a field with no user_events type.
func (t *Tracer) Attach(p *tracer.Point) (*Registration, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed.Load() {
		return nil, errors.New("userevents: tracer closed")
	}
	e := p.Desc()
	name := DefaultName(e)
	if t.cfg.Name != nil {
		name = t.cfg.Name(e)
	}
	l, err := makeLayout(name, e)
	if err != nil {
		return nil, fmt.Errorf("userevents: register %s: %w", e.FullName(), err)
	}
	addr := p.Word().Addr()
	registered.mu.Lock()
	defer registered.mu.Unlock()
	if registered.addrs[addr] {
		return nil, fmt.Errorf("register %s: %w", e.FullName(), ErrAlreadyRegistered)
	}
	desc := append([]byte(l.desc), 0)
	var flags uint16
	if t.cfg.Persist {
		flags |= regPersist
	}
	if t.cfg.MultiFormat {
		flags |= regMultiFormat
	}
	var index uint32
	reg := func() { index, err = ioctlReg(t.fd, desc, addr, enable.KernelBit, flags) }
	onCtlThread(reg)
	for (err == unix.EINVAL || err == unix.EPERM) && flags != 0 {
		// EINVAL: a kernel that does not know a flag (MULTI_FORMAT came in
		// 6.10); EPERM: PERSIST without CAP_PERFMON. Drop the flags one at a
		// time, the newest first.
		if flags&regMultiFormat != 0 && err == unix.EINVAL {
			flags &^= regMultiFormat
		} else if flags&regPersist != 0 {
			flags &^= regPersist
		} else {
			flags = 0
		}
		onCtlThread(reg)
	}
	switch {
	case err == unix.EADDRINUSE:
		return nil, fmt.Errorf("userevents: register %s as %q: %w: remove the old event (as root: echo '!%s' >> %s/dynamic_events, once nothing has it open), rename this one, or set Config.MultiFormat (Linux 6.10+)",
			e.FullName(), l.desc, ErrFormatChanged, name, t.root)
	case err == unix.EINVAL:
		return nil, fmt.Errorf("userevents: register %s: the kernel refused the description %q: %w", e.FullName(), l.desc, err)
	case err != nil:
		return nil, fmt.Errorf("userevents: register %s: %w", e.FullName(), err)
	}
	r := &Registration{t: t, p: p, l: l, name: name, flags: flags, index: index}
	r.att, err = p.AttachGated(r, enable.KernelMask)
	if err != nil {
		onCtlThread(func() { ioctlUnreg(t.fd, addr, enable.KernelBit) })
		return nil, fmt.Errorf("userevents: register %s: %w", e.FullName(), err)
	}
	if registered.addrs == nil {
		registered.addrs = map[uintptr]bool{}
	}
	registered.addrs[addr] = true
	t.regs[p] = r
	return r, nil
}

// AttachAll registers and attaches every event whose "provider:name"
// matches pattern (path.Match syntax), now and as they are defined, until
// Close. Events that cannot be registered are skipped; their errors are
// counted by [Tracer.Errors].
func (t *Tracer) AttachAll(pattern string) error {
	m, err := ftrace.Matcher(pattern)
	if err != nil {
		return fmt.Errorf("userevents: %w", err)
	}
	s := tracer.Subscribe(func(p *tracer.Point) {
		if m(p.Desc()) {
			if _, err := t.Attach(p); err != nil {
				t.fail(err)
			}
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

// Detach detaches the tracer from the event and unregisters it: the kernel
// stops updating the enable word and clears bit 31. The event itself goes
// away once no process has it registered (unless it persists); that is
// asynchronous, and deleting it meanwhile fails with EBUSY.
func (r *Registration) Detach() error {
	t := r.t
	t.mu.Lock()
	defer t.mu.Unlock()
	return r.detachLocked()
}

func (r *Registration) detachLocked() error {
	if r.closed {
		return nil
	}
	r.closed = true
	r.att.Detach()
	t := r.t
	delete(t.regs, r.p)
	addr := r.p.Word().Addr()
	registered.mu.Lock()
	delete(registered.addrs, addr)
	registered.mu.Unlock()
	var err error
	onCtlThread(func() { err = ioctlUnreg(t.fd, addr, enable.KernelBit) })
	if err != nil {
		return fmt.Errorf("userevents: unregister %s: %w", r.name, err)
	}
	return nil
}

// stackData is the size of the buffer a rewritten payload is laid out in,
// on the writer's stack. Larger events borrow from bigBufs.
const stackData = 512

// maxData bounds what one event may take: __rel_loc offsets have 16 bits.
const maxData = 64 << 10

var bigBufs = sync.Pool{New: func() any { b := make([]byte, maxData); return &b }}

// Trace writes one event; the tracer package calls it only while the kernel
// bit is set. It does not allocate for payloads up to 512 bytes.
func (r *Registration) Trace(rec catalog.Record) {
	t := r.t
	t.inflight.Add(1)
	defer t.inflight.Add(-1)
	if t.closed.Load() { // pairs with Close
		return
	}
	if !r.l.dyn {
		t.write(r, rec.Payload)
		return
	}
	var buf [stackData]byte
	if n, ok := rewrite(buf[:], r.l, rec.Payload); ok {
		t.write(r, buf[:n])
		return
	}
	r.traceLarge(rec)
}

func (r *Registration) traceLarge(rec catalog.Record) {
	bp := bigBufs.Get().(*[]byte)
	defer bigBufs.Put(bp)
	n, ok := rewrite(*bp, r.l, rec.Payload)
	if !ok {
		r.t.dropped.Add(1)
		return
	}
	r.t.write(r, (*bp)[:n])
}

func (t *Tracer) write(r *Registration, data []byte) {
	idx := r.index
	err := writeEvent(t.fd, &idx, data)
	if err == nil || err == unix.EBADF {
		// EBADF: the kernel disabled the event between our check of the bit
		// and the write. Harmless: the event was not wanted any more.
		return
	}
	t.fail(fmt.Errorf("userevents: write %s (%d bytes): %w", r.name, len(data), err))
}

func (t *Tracer) fail(err error) {
	t.errs.Add(1)
	t.lastErr.Store(&err)
}

// Errors returns how many writes or registrations failed, and the last
// failure.
func (t *Tracer) Errors() (uint64, error) {
	n := t.errs.Load()
	if p := t.lastErr.Load(); p != nil {
		return n, *p
	}
	return n, nil
}

// Dropped returns how many events were not written because their
// user_events layout exceeded 64 KiB.
func (t *Tracer) Dropped() uint64 { return t.dropped.Load() }

// Registrations returns the tracer's current registrations.
func (t *Tracer) Registrations() []*Registration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Collect(maps.Values(t.regs))
}

// Delete asks the kernel to delete the user_events event name
// (DIAG_IOCSDEL). It fails with EBUSY while any process has it registered,
// which includes a short while after the last unregister.
func (t *Tracer) Delete(name string) error {
	if err := ioctlDel(t.fd, append([]byte(name), 0)); err != nil {
		return fmt.Errorf("userevents: delete %s: %w", name, err)
	}
	return nil
}

// Close unregisters every event, waits for writes in progress and closes
// user_events_data.
func (t *Tracer) Close() error {
	t.mu.Lock()
	if t.closed.Swap(true) {
		t.mu.Unlock()
		return nil
	}
	subs := t.subs
	t.subs = nil
	t.mu.Unlock()
	for _, s := range subs {
		s.Cancel() // no Attach from a subscription after this
	}
	var errs []error
	t.mu.Lock()
	for _, r := range t.regs {
		errs = append(errs, r.detachLocked())
	}
	t.mu.Unlock()
	for t.inflight.Load() != 0 { // pairs with the Add(1) in Trace
		runtime.Gosched()
		time.Sleep(time.Microsecond)
	}
	if err := unix.Close(t.fd); err != nil {
		errs = append(errs, fmt.Errorf("userevents: close: %w", err))
	}
	return errors.Join(errs...)
}
