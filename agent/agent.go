// Package agent is the part of usertrace that runs inside every instrumented
// program: it finds the daemons in scope, tells them which events the program
// defines, and on their command makes shared-memory rings and attaches the
// user-space tracer to the events they ask for. The root package starts it
// when the program defines its first event; nothing is asked of the user.
//
// # Where it looks
//
// The agent connects to the socket "agent.sock" in each daemon directory:
// the directories listed in $USERTRACE_DAEMONS (colon-separated; replaces the
// defaults), else /run/usertrace for root and $XDG_RUNTIME_DIR/usertrace for
// other users. It watches each directory with inotify, so a daemon that
// starts later is found at once, without polling; if the daemon goes away the
// agent closes that daemon's rings and waits for it to come back.
// USERTRACE_AGENT=off disables the agent.
//
// # Invariants
//
//  1. The agent never blocks an emitting goroutine: everything it does runs
//     on its own goroutines, and the tracers it attaches (package ust) never
//     wait for the daemon. Otherwise a stuck daemon would stall the app.
//  2. Every ring the agent made for a daemon is closed (detached, unmapped)
//     when that daemon's connection ends, however it ends. Otherwise a daemon
//     that crashes in a loop would make the app's memory grow.
//  3. Catalog records reach the daemon before any RingReady or RingIDs that
//     names their events: both go through one sender, catalog first.
//
// Lock order: conn.mu before session.mu.
package agent

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/protocol"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/tracer"
	"github.com/usertrace/usertrace/ust"
)

// Environment variables.
const (
	EnvDirs    = "USERTRACE_DAEMONS"
	EnvDisable = "USERTRACE_AGENT"
)

// SocketName is the agents' socket in a daemon directory.
const SocketName = "agent.sock"

// DefaultDirs returns the daemon directories the agent uses when
// $USERTRACE_DAEMONS is unset.
func DefaultDirs() []string {
	if os.Geteuid() == 0 {
		return []string{"/run/usertrace"}
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return []string{filepath.Join(d, "usertrace")}
	}
	return nil
}

// Dirs returns the daemon directories in scope for this process.
func Dirs() []string {
	if v, ok := os.LookupEnv(EnvDirs); ok {
		var dirs []string
		for _, d := range strings.Split(v, ":") {
			if d != "" {
				dirs = append(dirs, d)
			}
		}
		return dirs
	}
	return DefaultDirs()
}

// EnvDebug, set to anything, makes the agent say on stderr what it does:
// which daemons it tries, what they answer, and why it gives up on one.
const EnvDebug = "USERTRACE_DEBUG"

var debug = os.Getenv(EnvDebug) != ""

func debugf(format string, args ...any) {
	if debug {
		fmt.Fprintf(os.Stderr, "usertrace agent[%d]: "+format+"\n", append([]any{os.Getpid()}, args...)...)
	}
}

// EnvWait, set to a duration ("3s"), makes Start wait up to that long for
// each daemon in scope to connect and set up the sessions already started
// there, so that a program launched by `usertrace record` loses none of its
// first events. Unset, Start never waits.
const EnvWait = "USERTRACE_AGENT_WAIT"

var start sync.Once

// Start starts the agent once per process; later calls do nothing. It
// returns at once (connecting happens in the background) unless $EnvWait
// asks it to wait.
func Start() {
	start.Do(func() {
		if os.Getenv(EnvDisable) == "off" {
			return
		}
		var wait time.Duration
		if v := os.Getenv(EnvWait); v != "" {
			wait, _ = time.ParseDuration(v)
		}
		var readies []chan struct{}
		for _, d := range Dirs() {
			ready := make(chan struct{})
			readies = append(readies, ready)
			go watch(d, ready)
		}
		if wait > 0 {
			deadline := time.After(wait)
			for _, r := range readies {
				select {
				case <-r:
				case <-deadline:
					return
				}
			}
		}
	})
}

// retryDelay bounds how fast the agent retries a daemon that accepts and
// then drops it.
const retryDelay = 100 * time.Millisecond

// watch keeps one daemon directory connected for the life of the process.
// ready is closed once the first connection has set up its initial
// sessions, or has failed.
func watch(dir string, ready chan struct{}) {
	var once sync.Once
	signal := func() { once.Do(func() { close(ready) }) }
	sock := filepath.Join(dir, SocketName)
	for {
		c, err := protocol.Dial(sock)
		if err == nil {
			debugf("connected to %s", sock)
			err := serve(c, signal)
			debugf("connection to %s ended: %v", sock, err)
			signal()
			time.Sleep(retryDelay)
			continue
		}
		debugf("no daemon at %s (%v); watching for one", sock, err)
		signal()
		waitForSocket(dir, sock, errors.Is(err, syscall.ECONNREFUSED))
	}
}

// conn is one live connection to a daemon.
type conn struct {
	c *protocol.Conn

	kick chan struct{} // wakes the sender; buffered, never blocks

	mu       sync.Mutex // guards the fields below and serializes sending
	pending  []*catalog.Event
	sessions map[uint64]*session
	closed   bool
}

type session struct {
	id  uint64
	t   *ust.Tracer
	sub *tracer.Subscription

	mu       sync.Mutex
	patterns []protocol.Pattern
	ready    bool             // RingReady sent
	ids      []protocol.IDMap // attached since the last report
	attached map[uint32]bool  // catalog ids attached
}

// sendTimeout bounds every send to a daemon: a daemon that stops reading
// costs the program at most this long, once, and then the connection.
const sendTimeout = time.Second

func serve(pc *protocol.Conn, ready func()) error {
	pc.SendTimeout = sendTimeout
	c := &conn{c: pc, sessions: make(map[uint64]*session), kick: make(chan struct{}, 1)}
	defer c.shutdown()
	name := filepath.Base(os.Args[0])
	if err := pc.Send(protocol.TypeHello, protocol.Hello{Version: protocol.Version, PID: os.Getpid(), Name: name}); err != nil {
		return err
	}
	h, files, err := pc.Recv()
	protocol.CloseFiles(files)
	var welcome protocol.Welcome
	if err == nil && h.Type == protocol.TypeWelcome {
		err = h.Decode(&welcome)
	}
	if err != nil {
		return fmt.Errorf("no welcome: %w", err)
	}
	if h.Type != protocol.TypeWelcome {
		var e protocol.Error
		h.Decode(&e)
		// Refused (version, scope): wait for the daemon to change rather
		// than knocking again at once.
		time.Sleep(5 * time.Second)
		return fmt.Errorf("refused: %s %s", e.Code, e.Message)
	}
	// Tell the daemon every event, then each new one (invariant 3: through
	// the pending queue, flushed before any ring message).
	replaying := true
	sub := tracer.Subscribe(func(p *tracer.Point) {
		c.mu.Lock()
		c.pending = append(c.pending, p.Desc())
		if !replaying {
			// A new event: tell the daemon now, on the defining goroutine,
			// so that a program that exits right after using it still has
			// it described (sends are bounded by sendTimeout).
			c.flushLocked()
		}
		c.mu.Unlock()
	})
	c.mu.Lock()
	replaying = false
	c.mu.Unlock()
	c.wake()
	defer sub.Cancel()
	done := make(chan struct{})
	defer close(done)
	go c.sender(done)
	initial := welcome.Sessions
	if initial <= 0 {
		ready()
	}
	for {
		h, files, err := pc.Recv()
		if err != nil {
			return err
		}
		c.handle(h, files)
		if initial > 0 && h.Type == protocol.TypeSessionOpen {
			if initial--; initial == 0 {
				ready()
			}
		}
	}
}

func (c *conn) wake() {
	select {
	case c.kick <- struct{}{}:
	default: // already woken
	}
}

// sender sends queued catalog records and newly attached ids, on one
// goroutine however many events are defined at once.
func (c *conn) sender(done chan struct{}) {
	for {
		select {
		case <-done:
			return
		case <-c.kick:
		}
		c.mu.Lock()
		c.flushLocked()
		ss := slices.Collect(maps.Values(c.sessions))
		c.mu.Unlock()
		for _, s := range ss {
			c.reportIDs(s)
		}
	}
}

// eventsBudget keeps an Events message under protocol.MaxBody: the
// catalog is base64 in JSON (4/3), and a description rarely passes 300 bytes.
const eventsBudget = protocol.MaxBody * 2 / 3

func (c *conn) flushLocked() {
	for len(c.pending) > 0 && !c.closed {
		size, n := 0, 0
		var scratch []byte
		for n < len(c.pending) {
			scratch = catalog.AppendEvent(scratch[:0], c.pending[n])
			if n > 0 && size+len(scratch) > eventsBudget-64 {
				break
			}
			size += len(scratch)
			n++
		}
		msg := catalog.AppendCatalog(nil, c.pending[:n])
		if err := c.c.Send(protocol.TypeEvents, protocol.Events{Catalog: msg}); err != nil {
			c.failLocked()
			return
		}
		c.pending = c.pending[n:]
	}
}

func (c *conn) handle(h protocol.Header, files []*os.File) {
	protocol.CloseFiles(files) // the daemon sends us none
	switch h.Type {
	case protocol.TypeSessionOpen:
		if m, ok := decode[protocol.SessionOpen](c, h); ok {
			c.open(m)
		}
	case protocol.TypeSessionStop:
		m, ok := decode[protocol.SessionStop](c, h)
		if !ok {
			return
		}
		c.stop(m.Session)
		// Ids attached before the stop reach the daemon before Stopped, so
		// its final metadata names every event in the ring.
		if s := c.session(m.Session); s != nil {
			c.reportIDs(s)
		}
		c.c.Send(protocol.TypeStopped, protocol.Stopped{Session: m.Session})
	case protocol.TypeSessionEnd:
		m, ok := decode[protocol.SessionEnd](c, h)
		if !ok {
			return
		}
		c.stop(m.Session)
		c.mu.Lock()
		delete(c.sessions, m.Session)
		c.mu.Unlock()
	case protocol.TypeFlush:
		m, ok := decode[protocol.Flush](c, h)
		if !ok {
			return
		}
		if s := c.session(m.Session); s != nil {
			s.t.Flush()
		}
		c.c.Send(protocol.TypeFlushed, protocol.Flushed{Session: m.Session})
	case protocol.TypeError:
		// The daemon refused something we sent; nothing to undo.
	default:
		c.c.SendError(protocol.CodeUnknownType, "agent does not handle %s", h.Type)
	}
}

// decode reads a message body of type M, answering the daemon with an error
// when it does not parse.
func decode[M any](c *conn, h protocol.Header) (m M, ok bool) {
	if err := h.Decode(&m); err != nil {
		c.c.SendError(protocol.CodeMalformed, "%v", err)
		return m, false
	}
	return m, true
}

// session returns the session with the given id, or nil.
func (c *conn) session(id uint64) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sessions[id]
}

// open starts tracing a session, or widens an open session's patterns.
func (c *conn) open(m protocol.SessionOpen) {
	for _, p := range m.Patterns {
		if err := p.Check(); err != nil {
			c.c.SendError(protocol.CodeInvalid, "session %d: %v", m.Session, err)
			return
		}
	}
	s := c.session(m.Session)
	if s != nil {
		s.mu.Lock()
		s.patterns = m.Patterns
		s.mu.Unlock()
		// Re-run the selection over every point; new matches attach.
		for _, p := range tracer.Points() {
			s.consider(p)
		}
		c.reportIDs(s)
		return
	}
	t, err := ust.New(ust.Config{Ring: ring.Config{
		NumShards: m.Ring.Shards,
		NumSub:    m.Ring.NumSub,
		SubSize:   m.Ring.SubSize,
		Overwrite: m.Ring.Overwrite,
		Name:      "usertrace-" + m.Name,
	}})
	if err != nil {
		c.c.SendError(protocol.CodeInternal, "session %d: make ring: %v", m.Session, err)
		return
	}
	s = &session{id: m.Session, t: t, patterns: m.Patterns, attached: make(map[uint32]bool)}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		t.Close()
		return
	}
	c.sessions[m.Session] = s
	c.mu.Unlock()
	s.sub = tracer.Subscribe(func(p *tracer.Point) {
		if s.consider(p) {
			// Report at once (see the catalog subscription in serve); before
			// RingReady this only queues.
			c.reportIDs(s)
		}
	})
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
	if c.closed {
		return // a description could not be sent (failLocked)
	}
	s.mu.Lock()
	ids := s.ids
	s.ids = nil
	s.ready = true
	s.mu.Unlock()
	if err := c.c.Send(protocol.TypeRingReady, protocol.RingReady{Session: m.Session, IDs: ids}, t.Ring().File()); err != nil {
		c.failLocked()
	}
}

// consider attaches the session's tracer to p if the patterns select it.
func (s *session) consider(p *tracer.Point) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := p.Desc()
	if s.attached[d.ID] || !protocol.Select(s.patterns, d) {
		return false
	}
	local, err := s.t.Attach(p)
	if err != nil {
		return false // closed
	}
	s.attached[d.ID] = true
	s.ids = append(s.ids, protocol.IDMap{Local: local, EventID: d.ID})
	return true
}

// reportIDs sends the ids attached since RingReady.
func (c *conn) reportIDs(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flushLocked()
	s.mu.Lock()
	if !s.ready || len(s.ids) == 0 {
		s.mu.Unlock()
		return
	}
	ids := s.ids
	s.ids = nil
	s.mu.Unlock()
	if c.closed {
		return
	}
	if err := c.c.Send(protocol.TypeRingIDs, protocol.RingIDs{Session: s.id, IDs: ids}); err != nil {
		c.failLocked()
	}
}

// stop detaches a session's tracer and flushes and unmaps its ring; the
// daemon keeps the data through its own mapping.
func (c *conn) stop(id uint64) {
	s := c.session(id)
	if s == nil {
		return
	}
	if s.sub != nil {
		s.sub.Cancel()
	}
	s.t.Close()
}

// failLocked gives up a connection on which a send failed: whatever
// follows could contradict what the daemon missed (a ring naming an event
// it was never told about). Closing it ends serve; watch connects again,
// and the new connection describes everything afresh. c.mu is held.
func (c *conn) failLocked() {
	c.closed = true
	c.c.Close()
}

// shutdown closes everything made for this daemon (invariant 2).
func (c *conn) shutdown() {
	c.mu.Lock()
	c.closed = true
	ss := c.sessions
	c.sessions = nil
	c.mu.Unlock()
	for _, s := range ss {
		if s.sub != nil {
			s.sub.Cancel()
		}
		s.t.Close()
	}
	c.c.Close()
}
