package daemon

// Nesting: a daemon inside a container (the forwarder) connects to the
// daemon of the enclosing container (the parent) and forwards every app it
// admitted, so that the parent's sessions trace them too.
//
// The parent treats a forwarded app like a directly connected one; only its
// agentConn differs: messages to it travel as Relay over the forwarder's
// connection, and the forwarder hands the agent's answers back the same way.
// The forwarder gives each parent session an id of its own on the agent's
// connection (an app may be traced by both daemons at once), and maps ids
// both ways.
//
// What the parent trusts: only the kernel. The forwarder is admitted like
// any peer (its pidfd, from the connection, must be in the parent's scope);
// each forwarded app comes with its pidfd, and the parent checks that the
// app's pid namespace is the forwarder's own or nested under it. A forwarder
// cannot make the parent trace, or even learn about, a process outside its
// own subtree: a forged forward is refused with the same "refused" as every
// other refusal. Rings are checked by the parent (ring.Open: seals, size)
// exactly as for a direct app. Nothing flows down but the parent's session
// commands for the forwarder's own apps.
//
// Lock order: Daemon.mu before upstream.mu / downstream.mu before app.mu.

import (
	"encoding/json"
	"fmt"
	"golang.org/x/sys/unix"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/protocol"
	"github.com/usertrace/usertrace/scope"
)

// agentConn is how the daemon talks to an app's agent: directly
// (*protocol.Conn) or through the daemon that forwarded the app (relay).
type agentConn interface {
	Send(t protocol.Type, body any, files ...*os.File) error
	SendError(code, format string, args ...any) error
	Close() error
}

// ---- Parent side: a forwarder connected to us. ----

// downstream is a forwarder's connection to this daemon.
type downstream struct {
	d     *Daemon
	conn  *protocol.Conn
	peer  *scope.Peer  // the forwarder, from its connection
	scope *scope.Scope // the forwarder's pid-namespace subtree

	mu   sync.Mutex
	apps map[uint64]*app // by the forwarder's id
}

// relay is the agentConn of a forwarded app.
type relay struct {
	down *downstream
	id   uint64
}

func (r relay) Send(t protocol.Type, body any, files ...*os.File) error {
	js, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("send %s: %w", t, err)
	}
	return r.down.conn.Send(protocol.TypeRelay, protocol.Relay{App: r.id, Type: t, Body: js}, files...)
}

func (r relay) SendError(code, format string, args ...any) error {
	return r.Send(protocol.TypeError, protocol.Error{Code: code, Message: fmt.Sprintf(format, args...)})
}

// Close ends the forwarder's connection: the daemon closes an app's
// connection only when it shuts down.
func (r relay) Close() error { return r.down.conn.Close() }

// serveDownstream serves a forwarder admitted by serveAgent.
func (d *Daemon) serveDownstream(pc *protocol.Conn, peer *scope.Peer, h protocol.Header) {
	var hello protocol.ForwardHello
	if err := h.Decode(&hello); err != nil {
		pc.SendError(protocol.CodeMalformed, "%v", err)
		return
	}
	sc, err := scope.Of(peer.PIDFD)
	if err != nil {
		d.log.Info("forwarder refused", "err", err)
		pc.SendError(protocol.CodeRefused, refusedMessage)
		return
	}
	defer sc.Close()
	down := &downstream{d: d, conn: pc, peer: peer, scope: sc, apps: map[uint64]*app{}}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		pc.SendError(protocol.CodeRefused, "daemon is shutting down")
		return
	}
	d.downs[down] = struct{}{}
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.downs, down)
		d.mu.Unlock()
		down.mu.Lock()
		apps := down.apps
		down.apps = nil
		down.mu.Unlock()
		for _, a := range apps {
			a.dropForwarded()
		}
	}()
	if err := pc.Send(protocol.TypeWelcome, protocol.Welcome{Version: protocol.Version, Daemon: d.cfg.Dir}); err != nil {
		return
	}
	d.log.Info("forwarder connected", "pid", peer.PID, "name", hello.Name, "depth", peer.Depth, "pidns", peer.NS.PID)
	for {
		h, files, err := pc.RecvOrReject()
		if err != nil {
			d.log.Info("forwarder disconnected", "pid", peer.PID, "err", err)
			return
		}
		switch h.Type {
		case protocol.TypeForwardApp:
			var m protocol.ForwardApp
			if err := h.Decode(&m); err != nil {
				protocol.CloseFiles(files)
				pc.SendError(protocol.CodeMalformed, "%v", err)
				return
			}
			down.add(m, files)
		case protocol.TypeRelay:
			var m protocol.Relay
			if err := h.Decode(&m); err != nil {
				protocol.CloseFiles(files)
				pc.SendError(protocol.CodeMalformed, "%v", err)
				return
			}
			down.relayed(m, files)
		case protocol.TypeForwardGone:
			protocol.CloseFiles(files)
			var m protocol.ForwardGone
			if err := h.Decode(&m); err != nil {
				pc.SendError(protocol.CodeMalformed, "%v", err)
				return
			}
			if a := down.remove(m.App); a != nil {
				a.dropForwarded()
			}
		case protocol.TypeError:
			protocol.CloseFiles(files)
			var e protocol.Error
			h.Decode(&e)
			d.log.Warn("forwarder reported an error", "pid", peer.PID, "code", e.Code, "message", e.Message)
		default:
			protocol.CloseFiles(files)
			pc.SendError(protocol.CodeUnknownType, "daemon does not handle %s from forwarders", h.Type)
		}
	}
}

// add admits a forwarded app if its pidfd lies in the forwarder's subtree.
func (down *downstream) add(m protocol.ForwardApp, files []*os.File) {
	d := down.d
	refuse := func(why error) {
		protocol.CloseFiles(files)
		d.log.Info("forwarded app refused", "forwarder", down.peer.PID, "app", m.App, "err", why)
		down.conn.Send(protocol.TypeForwardAnswer, protocol.ForwardAnswer{App: m.App,
			Error: &protocol.Error{Code: protocol.CodeRefused, Message: refusedMessage}})
	}
	if len(files) != 1 {
		refuse(fmt.Errorf("%d file descriptors, want the app's pidfd", len(files)))
		return
	}
	p, err := down.scope.Process(files[0])
	if err != nil {
		refuse(err)
		return
	}
	files[0].Close()
	p.Depth += down.peer.Depth // from this daemon's namespace
	a := &app{d: d, conn: relay{down, m.App}, peer: p, pid: p.PID, helloPID: m.HelloPID, name: sanitizeName(m.Name),
		events: make(map[uint32]*catalog.Event), streams: make(map[uint64]*stream), opening: make(map[uint64]*session)}
	d.mu.Lock()
	down.mu.Lock()
	if d.closed || down.apps == nil || down.apps[m.App] != nil {
		down.mu.Unlock()
		d.mu.Unlock()
		p.Close()
		refuse(fmt.Errorf("app id %d in use, or shutting down", m.App))
		return
	}
	down.apps[m.App] = a
	d.apps[a] = struct{}{}
	started := d.startedSessionsLocked()
	down.mu.Unlock()
	d.mu.Unlock()
	if err := down.conn.Send(protocol.TypeForwardAnswer, protocol.ForwardAnswer{App: m.App}); err != nil {
		return // the connection's end disconnects the app
	}
	d.log.Info("forwarded app admitted", "pid", a.pid, "name", a.name, "hello_pid", a.helloPID, "depth", p.Depth, "pidns", p.NS.PID)
	d.forwardNew(a) // further up, if this daemon forwards too
	for _, s := range started {
		a.open(s)
	}
}

// dropForwarded ends a forwarded app: its streams finish (their rings are
// drained and recovered, invariant 2) and its pidfd is released.
func (a *app) dropForwarded() {
	a.disconnect()
	a.peer.Close()
}

func (down *downstream) remove(id uint64) *app {
	down.mu.Lock()
	defer down.mu.Unlock()
	a := down.apps[id]
	delete(down.apps, id)
	return a
}

// relayed hands one of a forwarded app's agent messages to the app.
func (down *downstream) relayed(m protocol.Relay, files []*os.File) {
	down.mu.Lock()
	a := down.apps[m.App]
	down.mu.Unlock()
	if a == nil {
		protocol.CloseFiles(files) // dropped meanwhile
		return
	}
	h := protocol.Header{Version: protocol.Version, Type: m.Type, Body: m.Body}
	if err := a.handle(h, files); err != nil {
		// As for a direct app: a bad message ends the app, not the
		// forwarder's other apps.
		down.d.log.Warn("forwarded app message refused; dropping the app", "pid", a.pid, "type", m.Type, "err", err)
		a.conn.SendError(protocol.CodeInvalid, "%v", err)
		if down.remove(m.App) != nil {
			down.conn.Send(protocol.TypeForwardGone, protocol.ForwardGone{App: m.App})
			a.dropForwarded()
		}
	}
}

// ---- Forwarder side: our link to the parent daemon. ----

// upstream is this daemon's connection to its parent.
//
// Every message to the parent goes through one queue and one writer
// goroutine (send, writer), so that no goroutine of this daemon ever waits
// for the parent to read. Blocking sends made a cycle: the parent's reader
// waiting to send to us, our reader waiting to send to an agent, the agent
// waiting to send to us, and our agent reader waiting to send to the parent
// (a unix socket's buffer, ~200 KiB, holds only a few catalogs). A send
// timeout broke it by dropping a message, after which the parent refused
// the app ("ring names event 1, which the app never described"). A message
// that cannot be queued or sent now ends the link instead: the parent drops
// this daemon's apps and the reconnection forwards them again, whole.
type upstream struct {
	d    *Daemon
	conn *protocol.Conn
	out  chan upMsg
	done chan struct{} // closed when the link ends

	mu       sync.Mutex
	apps     map[uint64]*app // forwarded, by our id
	nextApp  uint64
	toLocal  map[uint64]uint64 // parent session id → the id the agents know
	toParent map[uint64]uint64 // and back
}

// upMsg is a message queued for the parent; it owns its files.
type upMsg struct {
	t     protocol.Type
	body  any
	files []*os.File
}

// upQueue bounds the messages waiting for the parent; upSendTimeout, how
// long the writer waits for the parent to take one.
const (
	upQueue       = 4096
	upSendTimeout = 5 * time.Second
)

// send queues a message for the parent, with duplicates of files (the
// caller keeps its own). It never blocks; if the queue is full the link
// ends.
func (up *upstream) send(t protocol.Type, body any, files ...*os.File) {
	m := upMsg{t: t, body: body}
	for _, f := range files {
		fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			protocol.CloseFiles(m.files)
			up.fail(fmt.Errorf("duplicate a file for the parent: %w", err))
			return
		}
		m.files = append(m.files, os.NewFile(uintptr(fd), f.Name()))
	}
	select {
	case <-up.done:
		protocol.CloseFiles(m.files)
		return
	default:
	}
	select {
	case up.out <- m:
	default:
		protocol.CloseFiles(m.files)
		up.fail(fmt.Errorf("%d messages wait for the parent", upQueue))
	}
}

// fail ends the link: the reader's Recv fails and the link is made again.
func (up *upstream) fail(err error) {
	up.d.log.Warn("link to the parent daemon failed; reconnecting", "err", err)
	up.conn.Close()
}

// writer sends the queued messages in order until the link ends.
func (up *upstream) writer() {
	for {
		select {
		case m := <-up.out:
			err := up.conn.Send(m.t, m.body, m.files...)
			protocol.CloseFiles(m.files)
			if err != nil {
				up.fail(err)
				up.discard()
				return
			}
		case <-up.done:
			up.discard()
			return
		}
	}
}

// discard closes the files of the messages left in the queue.
func (up *upstream) discard() {
	for {
		select {
		case m := <-up.out:
			protocol.CloseFiles(m.files)
		default:
			return
		}
	}
}

// upstreamRetry is how often a forwarder tries to reach an absent parent.
const upstreamRetry = 200 * time.Millisecond

// runUpstream keeps the link to the parent daemon up until Close.
func (d *Daemon) runUpstream() {
	sock := filepath.Join(d.cfg.Parent, AgentSocket)
	for {
		select {
		case <-d.quit:
			return
		default:
		}
		pc, err := protocol.Dial(sock)
		if err == nil {
			err = d.serveUpstream(pc)
			d.log.Info("link to the parent daemon ended", "parent", d.cfg.Parent, "err", err)
		}
		select {
		case <-d.quit:
			return
		case <-time.After(upstreamRetry):
		}
	}
}

func (d *Daemon) serveUpstream(pc *protocol.Conn) error {
	defer pc.Close()
	pc.SendTimeout = time.Second
	if err := pc.Send(protocol.TypeForwardHello, protocol.ForwardHello{Version: protocol.Version, Name: d.cfg.Dir}); err != nil {
		return err
	}
	h, files, err := pc.Recv()
	protocol.CloseFiles(files)
	if err != nil {
		return err
	}
	if h.Type != protocol.TypeWelcome {
		var e protocol.Error
		h.Decode(&e)
		// Refused: wait for the parent to change rather than knocking again at once.
		select {
		case <-d.quit:
		case <-time.After(5 * time.Second):
		}
		return fmt.Errorf("parent refused us: %s %s", e.Code, e.Message)
	}
	up := &upstream{d: d, conn: pc, apps: map[uint64]*app{}, toLocal: map[uint64]uint64{}, toParent: map[uint64]uint64{},
		out: make(chan upMsg, upQueue), done: make(chan struct{})}
	defer close(up.done)
	pc.SendTimeout = upSendTimeout
	go up.writer()
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.up = up
	apps := slices.Collect(maps.Keys(d.apps))
	d.mu.Unlock()
	d.log.Info("forwarding to the parent daemon", "parent", d.cfg.Parent)
	defer up.end()
	for _, a := range apps {
		up.forward(a)
	}
	for {
		h, files, err := pc.Recv()
		if err != nil {
			return err
		}
		protocol.CloseFiles(files) // the parent sends us none
		switch h.Type {
		case protocol.TypeRelay:
			var m protocol.Relay
			if err := h.Decode(&m); err != nil {
				return err
			}
			up.down(m)
		case protocol.TypeForwardAnswer:
			var m protocol.ForwardAnswer
			if err := h.Decode(&m); err != nil {
				return err
			}
			if m.Error != nil {
				d.log.Warn("the parent daemon refused an app", "app", m.App, "code", m.Error.Code)
				up.drop(m.App)
			}
		case protocol.TypeForwardGone:
			var m protocol.ForwardGone
			if err := h.Decode(&m); err != nil {
				return err
			}
			up.drop(m.App)
		case protocol.TypeError:
			var e protocol.Error
			h.Decode(&e)
			d.log.Warn("the parent daemon reported an error", "code", e.Code, "message", e.Message)
		}
	}
}

// forwardNew forwards a newly admitted app if a parent link is up.
func (d *Daemon) forwardNew(a *app) {
	d.mu.Lock()
	up := d.up
	d.mu.Unlock()
	if up != nil {
		up.forward(a)
	}
}

// forwardBudget keeps a relayed catalog under protocol.MaxBody (base64 in
// JSON, in a Relay envelope).
const forwardBudget = protocol.MaxBody/2 - 1024

// forward sends the parent an app: its pidfd, then its catalog so far.
// Holding a.mu keeps every later catalog record (handle, TypeEvents) after
// this snapshot.
func (up *upstream) forward(a *app) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.gone || a.up == up {
		return
	}
	up.mu.Lock()
	up.nextApp++
	id := up.nextApp
	up.apps[id] = a
	up.mu.Unlock()
	a.up, a.upID = up, id
	up.send(protocol.TypeForwardApp, protocol.ForwardApp{App: id, Name: a.name, HelloPID: a.helloPID}, a.peer.PIDFD)
	evs := make([]*catalog.Event, 0, len(a.events))
	for _, e := range a.events {
		evs = append(evs, e)
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].ID < evs[j].ID })
	for len(evs) > 0 {
		n, size := 0, 0
		for n < len(evs) {
			size += len(catalog.AppendEvent(nil, evs[n]))
			if n > 0 && size > forwardBudget {
				break
			}
			n++
		}
		up.relay(id, protocol.TypeEvents, protocol.Events{Catalog: catalog.AppendCatalog(nil, evs[:n])})
		evs = evs[n:]
	}
}

// relay queues an app's message for the parent.
func (up *upstream) relay(id uint64, t protocol.Type, body any) {
	js, err := json.Marshal(body)
	if err != nil {
		up.fail(err)
		return
	}
	up.send(protocol.TypeRelay, protocol.Relay{App: id, Type: t, Body: js})
}

// sessionField is the session id every per-session message carries.
type sessionField struct {
	Session uint64 `json:"session"`
}

// withSession returns a message body with its "session" replaced, keeping
// every other field (known or not) as it was.
func withSession(body []byte, id uint64) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	m["session"] = json.RawMessage(fmt.Sprint(id))
	return json.Marshal(m)
}

// down delivers a parent's message to a forwarded app's agent, in the
// agent's session ids.
func (up *upstream) down(m protocol.Relay) {
	up.mu.Lock()
	a := up.apps[m.App]
	up.mu.Unlock()
	if a == nil {
		return
	}
	switch m.Type {
	case protocol.TypeSessionOpen, protocol.TypeSessionStop, protocol.TypeSessionEnd, protocol.TypeFlush:
	case protocol.TypeError:
		var e protocol.Error
		json.Unmarshal(m.Body, &e)
		up.d.log.Warn("the parent daemon refused a forwarded app's message", "pid", a.pid, "code", e.Code, "message", e.Message)
		return
	default:
		return // nothing else goes down to an agent
	}
	var sf sessionField
	if err := json.Unmarshal(m.Body, &sf); err != nil {
		return
	}
	local, ok := up.localSession(sf.Session, m.Type == protocol.TypeSessionOpen)
	if !ok {
		return
	}
	body, err := withSession(m.Body, local)
	if err != nil {
		return
	}
	a.conn.Send(m.Type, body)
}

// localSession maps a parent session id to the id the agents know, making
// one on a SessionOpen.
func (up *upstream) localSession(parent uint64, create bool) (uint64, bool) {
	up.mu.Lock()
	l, ok := up.toLocal[parent]
	up.mu.Unlock()
	if ok || !create {
		return l, ok
	}
	up.d.mu.Lock()
	up.d.nextSession++ // one id space with this daemon's own sessions
	l = up.d.nextSession
	up.mu.Lock()
	if old, ok := up.toLocal[parent]; ok {
		l = old
	} else {
		up.toLocal[parent] = l
		up.toParent[l] = parent
	}
	up.mu.Unlock()
	up.d.mu.Unlock()
	return l, true
}

// relayAgent sends an agent's answer for a parent session to the parent. It
// reports false for messages of this daemon's own sessions. It takes files.
func (a *app) relayAgent(h protocol.Header, files []*os.File) bool {
	switch h.Type {
	case protocol.TypeRingReady, protocol.TypeRingIDs, protocol.TypeStopped, protocol.TypeFlushed:
	default:
		return false
	}
	a.mu.Lock()
	up, id := a.up, a.upID
	a.mu.Unlock()
	if up == nil {
		return false
	}
	var sf sessionField
	if err := json.Unmarshal(h.Body, &sf); err != nil {
		return false // handle reports it
	}
	up.mu.Lock()
	parent, ok := up.toParent[sf.Session]
	up.mu.Unlock()
	if !ok {
		return false
	}
	defer protocol.CloseFiles(files) // send queues duplicates
	body, err := withSession(h.Body, parent)
	if err != nil {
		return true
	}
	up.send(protocol.TypeRelay, protocol.Relay{App: id, Type: h.Type, Body: body}, files...)
	return true
}

// drop stops forwarding an app (the parent refused or dropped it): the
// agent lets go of the parent's sessions.
func (up *upstream) drop(id uint64) {
	up.mu.Lock()
	a := up.apps[id]
	delete(up.apps, id)
	locals := make([]uint64, 0, len(up.toParent))
	for l := range up.toParent {
		locals = append(locals, l)
	}
	up.mu.Unlock()
	if a == nil {
		return
	}
	a.mu.Lock()
	if a.up == up {
		a.up = nil
	}
	a.mu.Unlock()
	for _, l := range locals {
		a.conn.Send(protocol.TypeSessionEnd, protocol.SessionEnd{Session: l})
	}
}

// gone tells the parent that a forwarded app disconnected.
func (up *upstream) gone(id uint64) {
	up.mu.Lock()
	_, ok := up.apps[id]
	delete(up.apps, id)
	up.mu.Unlock()
	if ok {
		up.send(protocol.TypeForwardGone, protocol.ForwardGone{App: id})
	}
}

// end releases every app when the link ends.
func (up *upstream) end() {
	up.d.mu.Lock()
	if up.d.up == up {
		up.d.up = nil
	}
	up.d.mu.Unlock()
	up.mu.Lock()
	ids := make([]uint64, 0, len(up.apps))
	for id := range up.apps {
		ids = append(ids, id)
	}
	up.mu.Unlock()
	for _, id := range ids {
		up.drop(id)
	}
}
