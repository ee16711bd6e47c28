package daemon

import (
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/protocol"
)

// Session states.
const (
	stateCreated = "created"
	stateStarted = "started"
	stateStopped = "stopped"
)

// stopTimeout bounds how long stop waits for an agent's Stopped before
// recovering its ring without it.
const stopTimeout = 5 * time.Second

type session struct {
	d    *Daemon
	id   uint64
	name string
	out  string

	mu       sync.Mutex
	patterns []protocol.Pattern
	ring     protocol.RingConfig
	state    string
	streams  []*stream // every stream ever made, for the figures
	paths    map[string]int

	opening   sync.WaitGroup // apps sent SessionOpen that have not answered
	snapshots int            // guarded by mu
}

func (s *session) addStream(st *stream) {
	s.mu.Lock()
	s.streams = append(s.streams, st)
	s.mu.Unlock()
}

// streamPath names a new trace directory for app a: one per ring, so a
// session started twice, or an app seen twice, never mixes rings.
func (s *session) streamPath(a *app) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := fmt.Sprintf("%s-%d", a.name, a.pid)
	n := s.paths[base]
	s.paths[base] = n + 1
	if n > 0 {
		base = fmt.Sprintf("%s-%d", base, n)
	}
	return filepath.Join(s.out, base)
}

func (s *session) status() protocol.SessionStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := protocol.SessionStatus{Name: s.name, State: s.state, Output: s.out, Patterns: append([]protocol.Pattern(nil), s.patterns...), Ring: s.ring}
	apps := map[*app]bool{}
	for _, x := range s.streams {
		p, b, e, dis := x.stats()
		st.Packets += p
		st.Bytes += b
		st.Events += e
		st.Discarded += dis
		apps[x.a] = true
	}
	st.Apps = len(apps)
	return st
}

func (d *Daemon) startedSessionsLocked() []*session {
	var ss []*session
	for _, s := range d.sessions {
		s.mu.Lock()
		if s.state == stateStarted {
			ss = append(ss, s)
		}
		s.mu.Unlock()
	}
	return ss
}

func (d *Daemon) appsSnapshot() []*app {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Collect(maps.Keys(d.apps))
}

func (d *Daemon) serveClient(uc *net.UnixConn) {
	pc := protocol.NewConn(uc)
	defer pc.Close()
	peer := d.admit(uc, pc, "client", 0)
	if peer == nil {
		return
	}
	peer.Close()
	for {
		h, files, err := pc.RecvOrReject()
		protocol.CloseFiles(files)
		if err != nil {
			return
		}
		if h.Version != protocol.Version {
			pc.Send(protocol.TypeResponse, protocol.Response{Error: &protocol.Error{Code: protocol.CodeVersion,
				Message: fmt.Sprintf("daemon speaks protocol version %d, client %d: use matching versions", protocol.Version, h.Version)}})
			return
		}
		if h.Type != protocol.TypeRequest {
			pc.SendError(protocol.CodeUnknownType, "expected a request, got %s", h.Type)
			continue
		}
		var req protocol.Request
		if err := h.Decode(&req); err != nil {
			pc.Send(protocol.TypeResponse, protocol.Response{Error: &protocol.Error{Code: protocol.CodeMalformed, Message: err.Error()}})
			return
		}
		if err := pc.Send(protocol.TypeResponse, d.Do(req)); err != nil {
			return
		}
	}
}

func errResponse(code, format string, args ...any) protocol.Response {
	return protocol.Response{Error: &protocol.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// Do carries out a client request. It is what control.sock serves, and what
// an embedding program (usertrace record) calls directly.
func (d *Daemon) Do(req protocol.Request) protocol.Response {
	switch req.Op {
	case protocol.OpCreate:
		return d.create(req)
	case protocol.OpList:
		return d.list()
	case protocol.OpStatus:
		return d.statusAll()
	}
	d.mu.Lock()
	s := d.sessions[req.Session]
	d.mu.Unlock()
	if s == nil {
		return errResponse(protocol.CodeNotFound, "no session %q (create it first; `usertrace status` lists sessions)", req.Session)
	}
	switch req.Op {
	case protocol.OpEnable, protocol.OpDisable:
		return d.enable(s, req)
	case protocol.OpStart:
		return d.start(s)
	case protocol.OpStop:
		d.stopSession(s)
		st := s.status()
		return protocol.Response{Session: &st}
	case protocol.OpDestroy:
		d.stopSession(s)
		d.mu.Lock()
		delete(d.sessions, s.name)
		d.mu.Unlock()
		st := s.status()
		return protocol.Response{Session: &st}
	case protocol.OpSnapshot:
		return d.snapshot(s)
	}
	return errResponse(protocol.CodeInvalid, "unknown operation %q", req.Op)
}

func (d *Daemon) create(req protocol.Request) protocol.Response {
	name := req.Session
	if name == "" {
		name = "session-" + time.Now().Format("20060102-150405")
	}
	if !catalog.ValidName(strings.ReplaceAll(name, "-", "_")) {
		return errResponse(protocol.CodeInvalid, "session name %q: use letters, digits, - and _", name)
	}
	rc := req.Ring
	if rc.NumSub == 0 {
		rc.NumSub = d.cfg.Ring.NumSub
	}
	if rc.SubSize == 0 {
		rc.SubSize = d.cfg.Ring.SubSize
	}
	if rc.Shards == 0 {
		rc.Shards = d.cfg.Ring.Shards
	}
	if rc.NumSub < 2 || rc.NumSub&(rc.NumSub-1) != 0 || rc.NumSub > 1024 ||
		rc.SubSize < 4096 || rc.SubSize&(rc.SubSize-1) != 0 || rc.SubSize > 64<<20 || rc.Shards < 0 || rc.Shards > 1024 {
		return errResponse(protocol.CodeInvalid, "ring shape %+v: sub-buffers must be a power of 2 from 2 to 1024, of a power-of-2 size from 4 KiB to 64 MiB", rc)
	}
	out := req.Output
	if out == "" {
		out = filepath.Join(d.cfg.OutputRoot, name)
	}
	out, err := filepath.Abs(out)
	if err != nil {
		return errResponse(protocol.CodeInvalid, "output %q: %v", req.Output, err)
	}
	if ents, err := os.ReadDir(out); err == nil && len(ents) > 0 {
		return errResponse(protocol.CodeInvalid, "output directory %s is not empty: choose another (-o) or remove it", out)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return errResponse(protocol.CodeInvalid, "output directory: %v", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return errResponse(protocol.CodeInvalid, "daemon is shutting down")
	}
	if _, ok := d.sessions[name]; ok {
		return errResponse(protocol.CodeInvalid, "session %q already exists", name)
	}
	d.nextSession++
	s := &session{d: d, id: d.nextSession, name: name, out: out, ring: rc, state: stateCreated, paths: map[string]int{}}
	d.sessions[name] = s
	st := s.status()
	return protocol.Response{Session: &st}
}

func (d *Daemon) enable(s *session, req protocol.Request) protocol.Response {
	p := req.Pattern
	if err := p.Check(); err != nil {
		return errResponse(protocol.CodeInvalid, "%v", err)
	}
	s.mu.Lock()
	if req.Op == protocol.OpEnable {
		s.patterns = append(s.patterns, p)
	} else {
		// Drop an identical enable pattern; otherwise exclude the glob.
		kept := s.patterns[:0]
		removed := false
		for _, q := range s.patterns {
			if !q.Exclude && q.Glob == p.Glob && q.Level == p.Level {
				removed = true
				continue
			}
			kept = append(kept, q)
		}
		s.patterns = kept
		if !removed {
			p.Exclude = true
			s.patterns = append(s.patterns, p)
		}
	}
	started := s.state == stateStarted
	s.mu.Unlock()
	if started {
		for _, a := range d.appsSnapshot() {
			a.open(s) // agents attach to newly selected events
		}
	}
	st := s.status()
	return protocol.Response{Session: &st}
}

func (d *Daemon) start(s *session) protocol.Response {
	s.mu.Lock()
	if s.state == stateStarted {
		s.mu.Unlock()
		return errResponse(protocol.CodeInvalid, "session %q is already started", s.name)
	}
	if len(s.patterns) == 0 {
		s.mu.Unlock()
		return errResponse(protocol.CodeInvalid, "session %q has no events enabled: run `usertrace enable -s %s 'provider:*'` first", s.name, s.name)
	}
	s.state = stateStarted
	s.mu.Unlock()
	for _, a := range d.appsSnapshot() {
		a.open(s)
	}
	st := s.status()
	return protocol.Response{Session: &st}
}

// stopSession stops a started session: every app flushes and detaches, and
// every stream is drained to its end.
func (d *Daemon) stopSession(s *session) {
	s.mu.Lock()
	if s.state != stateStarted {
		s.mu.Unlock()
		return
	}
	s.state = stateStopped
	s.mu.Unlock()
	// Rings already on their way count: wait for every app that was asked
	// to open the session to answer or go away (bounded by stopTimeout).
	opened := make(chan struct{})
	go func() { s.opening.Wait(); close(opened) }()
	select {
	case <-opened:
	case <-time.After(stopTimeout):
		d.log.Warn("an app never answered the session's start; stopping without its ring", "session", s.name)
	}
	apps := d.appsSnapshot()
	for _, a := range apps {
		a.stop(s)
	}
	// Wait for every stream of the session, including those of apps that
	// have already gone (their streams finish as their connections end).
	s.mu.Lock()
	waits := append([]*stream(nil), s.streams...)
	s.mu.Unlock()
	deadline := time.After(stopTimeout)
	for _, st := range waits {
		select {
		case <-st.finishCh:
		case <-deadline:
			d.log.Warn("app did not answer stop; recovering its ring without it", "pid", st.a.pid)
			st.finish()
		}
		<-st.done
	}
	for _, a := range apps {
		a.end(s)
	}
}

func (d *Daemon) list() protocol.Response {
	var evs []protocol.EventInfo
	for _, a := range d.appsSnapshot() {
		a.mu.Lock()
		for _, e := range a.events {
			evs = append(evs, protocol.EventInfo{PID: a.pid, App: a.name, ID: e.ID, Provider: e.Provider, Name: e.Name,
				Level: e.Level.String(), Fields: fieldSummary(e.Fields)})
		}
		a.mu.Unlock()
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].PID != evs[j].PID {
			return evs[i].PID < evs[j].PID
		}
		return evs[i].ID < evs[j].ID
	})
	return protocol.Response{Events: evs}
}

func fieldSummary(fs []catalog.Field) string {
	var b strings.Builder
	for i, f := range fs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(f.Name)
		b.WriteByte(' ')
		b.WriteString(typeName(&f.Type))
	}
	return b.String()
}

func typeName(t *catalog.Type) string {
	switch t.Kind {
	case catalog.Array:
		return fmt.Sprintf("[%d]%s", t.Len, typeName(t.Elem))
	case catalog.Sequence:
		return "[]" + typeName(t.Elem)
	case catalog.Enum:
		return "enum " + typeName(t.Elem)
	case catalog.Struct:
		return "{" + fieldSummary(t.Fields) + "}"
	}
	return t.Kind.String()
}

func (d *Daemon) statusAll() protocol.Response {
	var r protocol.Response
	d.mu.Lock()
	ss := slices.Collect(maps.Values(d.sessions))
	d.mu.Unlock()
	sort.Slice(ss, func(i, j int) bool { return ss[i].id < ss[j].id })
	for _, s := range ss {
		r.Sessions = append(r.Sessions, s.status())
	}
	for _, a := range d.appsSnapshot() {
		a.mu.Lock()
		r.Apps = append(r.Apps, protocol.AppStatus{PID: a.pid, Name: a.name, Events: len(a.events), Sessions: len(a.streams),
			Depth: a.peer.Depth, Namespaces: a.peer.NS.Map()})
		a.mu.Unlock()
	}
	sort.Slice(r.Apps, func(i, j int) bool { return r.Apps[i].PID < r.Apps[j].PID })
	return r
}

// snapshot writes what a flight-recorder session's rings hold now into
// OUTPUT/snapshot-N/, leaving the rings recording. Each app is asked to
// flush first so that its newest events are included.
func (d *Daemon) snapshot(s *session) protocol.Response {
	s.mu.Lock()
	if !s.ring.Overwrite {
		s.mu.Unlock()
		return errResponse(protocol.CodeInvalid, "session %q is not a flight recorder: create it with --overwrite to take snapshots", s.name)
	}
	if s.state != stateStarted {
		s.mu.Unlock()
		return errResponse(protocol.CodeInvalid, "session %q is not started", s.name)
	}
	s.snapshots++
	dir := filepath.Join(s.out, fmt.Sprintf("snapshot-%d", s.snapshots))
	var live []*stream
	for _, st := range s.streams {
		select {
		case <-st.finishCh:
		default:
			live = append(live, st)
		}
	}
	s.mu.Unlock()
	for _, st := range live {
		select {
		case <-st.flushed: // a stale answer
		default:
		}
		st.a.conn.Send(protocol.TypeFlush, protocol.Flush{Session: s.id})
	}
	deadline := time.After(time.Second)
	for _, st := range live {
		select {
		case <-st.flushed:
		case <-deadline:
		}
	}
	var total uint64
	for _, st := range live {
		n, err := st.snapshot(filepath.Join(dir, fmt.Sprintf("%s-%d", st.a.name, st.a.pid)))
		if err != nil {
			d.log.Warn("snapshot of one app failed", "pid", st.a.pid, "err", err)
		}
		total += n
	}
	st := s.status()
	st.Events = total
	return protocol.Response{Session: &st, Path: dir}
}
