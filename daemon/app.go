package daemon

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/protocol"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/scope"
)

// maxAppEvents bounds the catalog one app may declare.
const maxAppEvents = 1 << 20

// app is one connected agent.
type app struct {
	d        *Daemon
	conn     agentConn   // *protocol.Conn, or a relay through a forwarder
	peer     *scope.Peer // from the connection: pidfd, namespaces, depth
	pid      int         // the daemon's view of the app's pid, from peer
	helloPID int         // from Hello: recorded, not trusted
	name     string      // from Hello: recorded, not trusted

	mu      sync.Mutex
	events  map[uint32]*catalog.Event
	streams map[uint64]*stream  // by session id
	opening map[uint64]*session // sent SessionOpen, no RingReady yet
	gone    bool
	up      *upstream // forwarded to the parent daemon over up (forward.go)
	upID    uint64    // the app's id on up
}

// refusedMessage is all a refused peer learns: the same words whether it is
// outside the scope, gone, or could not be identified (docs/threat-model.md).
const refusedMessage = "refused"

// admit identifies the process that connected and checks that it is in the
// daemon's scope. A client must be in the daemon's own pid namespace
// (maxDepth 0): a nested tenant runs a daemon of its own.
func (d *Daemon) admit(uc *net.UnixConn, pc *protocol.Conn, what string, maxDepth int) *scope.Peer {
	p, err := d.scope.Conn(uc)
	if err == nil && maxDepth >= 0 && p.Depth > maxDepth {
		p.Close()
		err = fmt.Errorf("%w: pid namespace %d levels below the daemon's", scope.ErrOutOfScope, p.Depth)
	}
	if err != nil {
		d.log.Info(what+" refused", "err", err)
		pc.SendError(protocol.CodeRefused, refusedMessage)
		// Take the peer's first message before closing, so that a peer
		// that writes before it reads gets the refusal, not EPIPE.
		uc.SetReadDeadline(time.Now().Add(time.Second))
		if _, files, err := pc.Recv(); err == nil {
			protocol.CloseFiles(files)
		}
		return nil
	}
	return p
}

func (d *Daemon) serveAgent(uc *net.UnixConn) {
	pc := protocol.NewConn(uc)
	defer pc.Close()
	peer := d.admit(uc, pc, "app", -1)
	if peer == nil {
		return
	}
	a := &app{d: d, conn: pc, peer: peer, pid: peer.PID, events: make(map[uint32]*catalog.Event),
		streams: make(map[uint64]*stream), opening: make(map[uint64]*session)}
	defer peer.Close()

	h, files, err := pc.RecvOrReject()
	protocol.CloseFiles(files)
	if err != nil {
		return
	}
	if h.Type == protocol.TypeForwardHello && h.Version == protocol.Version {
		d.serveDownstream(pc, peer, h) // a nested daemon (forward.go)
		return
	}
	if h.Type != protocol.TypeHello {
		pc.SendError(protocol.CodeInvalid, "expected hello, got %s", h.Type)
		return
	}
	if h.Version != protocol.Version {
		pc.SendError(protocol.CodeVersion, "daemon speaks protocol version %d, agent %d: upgrade the older side", protocol.Version, h.Version)
		return
	}
	var hello protocol.Hello
	if err := h.Decode(&hello); err != nil {
		pc.SendError(protocol.CodeMalformed, "%v", err)
		return
	}
	a.name = sanitizeName(hello.Name)
	a.helloPID = hello.PID

	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		pc.SendError(protocol.CodeRefused, "daemon is shutting down")
		return
	}
	d.apps[a] = struct{}{}
	started := d.startedSessionsLocked()
	d.mu.Unlock()
	if err := pc.Send(protocol.TypeWelcome, protocol.Welcome{Version: protocol.Version, Daemon: d.cfg.Dir, Sessions: len(started)}); err != nil {
		d.mu.Lock()
		delete(d.apps, a)
		d.mu.Unlock()
		return
	}
	d.log.Info("app connected", "pid", a.pid, "name", a.name, "hello_pid", a.helloPID, "depth", peer.Depth, "pidns", peer.NS.PID)
	defer a.disconnect()
	d.forwardNew(a)

	for _, s := range started {
		a.open(s)
	}
	for {
		h, files, err := pc.RecvOrReject()
		if err != nil {
			if !protocol.IsEOF(err) {
				d.log.Warn("app sent a bad message; disconnecting it", "pid", a.pid, "err", err)
			}
			return
		}
		if err := a.handle(h, files); err != nil {
			d.log.Warn("app message refused; disconnecting it", "pid", a.pid, "type", h.Type, "err", err)
			pc.SendError(protocol.CodeInvalid, "%v", err)
			return
		}
	}
}

// sanitizeName keeps a program name printable and short enough for a path.
func sanitizeName(s string) string {
	b := []byte(s)
	if len(b) > 64 {
		b = b[:64]
	}
	for i, c := range b {
		if !(c == '-' || c == '_' || c == '.' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
			b[i] = '_'
		}
	}
	if len(b) == 0 || b[0] == '.' {
		return "app" + string(b)
	}
	return string(b)
}

func (a *app) handle(h protocol.Header, files []*os.File) error {
	if a.relayAgent(h, files) {
		return nil // an answer for the parent daemon's session (forward.go)
	}
	if h.Type != protocol.TypeRingReady {
		protocol.CloseFiles(files)
	}
	switch h.Type {
	case protocol.TypeEvents:
		var m protocol.Events
		if err := h.Decode(&m); err != nil {
			return err
		}
		dec, err := catalog.DecodeCatalog(m.Catalog)
		if err != nil {
			return err
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		for _, e := range dec.Events {
			if len(a.events) >= maxAppEvents {
				return fmt.Errorf("more than %d events", maxAppEvents)
			}
			if old, ok := a.events[e.ID]; ok && old.FullName() != e.FullName() {
				return fmt.Errorf("event id %d redefined from %s to %s", e.ID, old.FullName(), e.FullName())
			}
			a.events[e.ID] = e
		}
		if a.up != nil {
			// Forwarded: the parent learns each record too, in order
			// (after the snapshot forward sent under a.mu).
			// (h.Body is the receive buffer: the queued message keeps a copy.)
			a.up.send(protocol.TypeRelay, protocol.Relay{App: a.upID, Type: protocol.TypeEvents, Body: bytes.Clone(h.Body)})
		}
		return nil
	case protocol.TypeRingReady:
		var m protocol.RingReady
		if err := h.Decode(&m); err != nil {
			protocol.CloseFiles(files)
			return err
		}
		if len(files) != 1 {
			protocol.CloseFiles(files)
			return fmt.Errorf("ring-ready for session %d carries %d file descriptors, want 1 (the ring memfd)", m.Session, len(files))
		}
		return a.ringReady(m, files[0])
	case protocol.TypeRingIDs:
		var m protocol.RingIDs
		if err := h.Decode(&m); err != nil {
			return err
		}
		st := a.stream(m.Session)
		if st == nil {
			return nil // a session that ended meanwhile
		}
		return st.addIDs(m.IDs)
	case protocol.TypeStopped:
		var m protocol.Stopped
		if err := h.Decode(&m); err != nil {
			return err
		}
		st := a.stream(m.Session)
		if st != nil {
			st.finish()
		}
		return nil
	case protocol.TypeFlushed:
		var m protocol.Flushed
		if err := h.Decode(&m); err != nil {
			return err
		}
		st := a.stream(m.Session)
		if st != nil {
			select {
			case st.flushed <- struct{}{}:
			default: // nobody waiting, or already told
			}
		}
		return nil
	case protocol.TypeError:
		var e protocol.Error
		h.Decode(&e)
		a.d.log.Warn("app reported an error", "pid", a.pid, "code", e.Code, "message", e.Message)
		return nil
	default:
		a.conn.SendError(protocol.CodeUnknownType, "daemon does not handle %s from agents", h.Type)
		return nil
	}
}

// ringReady checks and maps an app's ring and starts its consumer.
func (a *app) ringReady(m protocol.RingReady, f *os.File) error {
	defer a.opened(m.Session) // after the stream is registered with its session
	a.d.mu.Lock()
	var s *session
	for _, x := range a.d.sessions {
		if x.id == m.Session {
			s = x
		}
	}
	a.d.mu.Unlock()
	if s != nil {
		s.mu.Lock()
		if s.state != stateStarted {
			s = nil
		}
		s.mu.Unlock()
	}
	if s == nil {
		// Stopped or destroyed meanwhile: tell the agent to let go.
		f.Close()
		a.conn.Send(protocol.TypeSessionEnd, protocol.SessionEnd{Session: m.Session})
		return nil
	}
	r, err := ring.Open(f) // checks seals and size before mapping; owns f from here
	if err != nil {
		return fmt.Errorf("ring for session %d refused: %w", m.Session, err)
	}
	st, err := newStream(s, a, r)
	if err != nil {
		r.Close()
		return err
	}
	if err := st.addIDs(m.IDs); err != nil {
		st.abort()
		return err
	}
	a.mu.Lock()
	if old := a.streams[m.Session]; old != nil {
		old.finish()
	}
	a.streams[m.Session] = st
	a.mu.Unlock()
	s.addStream(st)
	st.start()
	return nil
}

// open asks the app to trace session s. Until the app answers with its
// ring (or goes away), the session counts it as opening, so that a stop
// waits for that ring too.
func (a *app) open(s *session) {
	s.mu.Lock()
	m := protocol.SessionOpen{Session: s.id, Name: s.name, Patterns: append([]protocol.Pattern(nil), s.patterns...), Ring: s.ring}
	s.mu.Unlock()
	a.mu.Lock()
	first := !a.gone && a.opening[s.id] == nil
	if first {
		a.opening[s.id] = s
		s.opening.Add(1)
	}
	a.mu.Unlock()
	if err := a.conn.Send(protocol.TypeSessionOpen, m); err != nil && first {
		a.opened(s.id)
	}
}

// opened marks session id as answered (or abandoned) by the app.
func (a *app) opened(id uint64) {
	a.mu.Lock()
	s := a.opening[id]
	delete(a.opening, id)
	a.mu.Unlock()
	if s != nil {
		s.opening.Done()
	}
}

// stop asks the app to stop session s; its stream finishes on Stopped (or
// when the app goes away).
func (a *app) stop(s *session) {
	// If the app is gone the send fails; its stream still finishes only when
	// the connection's last queued message has been read (disconnect), so a
	// RingIDs sent just before exiting is not lost.
	a.conn.Send(protocol.TypeSessionStop, protocol.SessionStop{Session: s.id})
}

// end tells the app to forget session s.
func (a *app) end(s *session) {
	a.mu.Lock()
	delete(a.streams, s.id)
	a.mu.Unlock()
	a.conn.Send(protocol.TypeSessionEnd, protocol.SessionEnd{Session: s.id})
}

// stream returns the app's stream for a session, or nil.
func (a *app) stream(session uint64) *stream {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.streams[session]
}

// event returns the app's description of an event id.
func (a *app) event(id uint32) *catalog.Event {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.events[id]
}

// disconnect finishes every stream of a departed app (invariant 2).
func (a *app) disconnect() {
	a.d.mu.Lock()
	delete(a.d.apps, a)
	a.d.mu.Unlock()
	a.mu.Lock()
	a.gone = true
	up, upID := a.up, a.upID
	a.up = nil
	streams := a.streams
	a.streams = map[uint64]*stream{}
	var opening []uint64
	for id := range a.opening {
		opening = append(opening, id)
	}
	a.mu.Unlock()
	if up != nil {
		up.gone(upID)
	}
	for _, id := range opening {
		a.opened(id)
	}
	for _, st := range streams {
		st.finish()
	}
	a.d.log.Info("app disconnected", "pid", a.pid, "name", a.name)
}
