// Package daemon is usertraced: it accepts the agents of traced programs and
// the commands of clients, keeps tracing sessions, and drains each program's
// shared-memory rings into CTF trace directories.
//
// A Daemon listens in its directory on two SOCK_SEQPACKET path sockets:
// agent.sock for agents and control.sock for clients (protocol in
// docs/protocol.md). Both may be used from one process, as `usertrace record`
// does with an embedded daemon.
//
// # Invariants
//
//  1. Everything an app sends is hostile: each message is parsed by package
//     protocol with bounds on every length, catalogs by the hostile-safe
//     catalog decoder, rings by ring.Reader; a bad message gets an Error back
//     and closes that app's connection, never another's.
//  2. A ring's data is drained until the daemon has seen its end: the agent's
//     Stopped, the app's disconnection, or the daemon's own shutdown. Then the
//     reader recovers every committed byte. Otherwise an app that dies
//     mid-burst would lose committed events.
//  3. The trace metadata is rewritten (atomically, by rename) whenever a
//     stream learns a new event, before packets of that event are written.
//     Otherwise a daemon killed at the wrong moment leaves unreadable traces.
//
// Lock order: Daemon.mu before session.mu before stream.mu.
package daemon

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/usertrace/usertrace/protocol"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/scope"
)

// Socket names in a daemon directory.
const (
	AgentSocket   = "agent.sock"
	ControlSocket = "control.sock"
)

// Config configures a Daemon.
type Config struct {
	// Dir holds the sockets. It is created if missing.
	Dir string
	// OutputRoot is where sessions without an explicit output directory
	// write their traces (default: Dir/traces).
	OutputRoot string
	// DrainInterval is how often consumers look for full packets (default
	// 10ms). Packets wait at most this long in the ring.
	DrainInterval time.Duration
	// Ring is the default ring shape for new sessions.
	Ring protocol.RingConfig
	// Parent, if set, is the directory of the daemon of the enclosing
	// container: this daemon forwards every app it admits there, so that
	// the parent's sessions trace them too (forward.go).
	Parent string
	// NoRealtime keeps consumers in the normal scheduling class. By
	// default a consumer whose ring is busy drains from a real-time thread
	// (SCHED_FIFO, lowest priority) when the daemon may, because at normal
	// priority the programs it drains can keep it off the CPU until their
	// rings overflow (docs/design.md, "How the daemon gets the CPU").
	NoRealtime bool
	// Log receives the daemon's log (default: discarded).
	Log *slog.Logger
}

// Daemon is a running usertraced.
type Daemon struct {
	cfg     Config
	agentLn *net.UnixListener
	ctlLn   *net.UnixListener
	log     *slog.Logger
	scope   *scope.Scope // the daemon's own pid namespace subtree

	rt *rtGate // real-time draining (realtime.go)

	mu          sync.Mutex
	apps        map[*app]struct{}
	sessions    map[string]*session
	nextSession uint64
	closed      bool
	downs       map[*downstream]struct{} // forwarders connected to us
	up          *upstream                // our link to the parent daemon
	quit        chan struct{}            // closed by Close

	wg        sync.WaitGroup // connection handlers and consumers
	closeOnce sync.Once
}

// Default ring shape: the ring package's (16 sub-buffers of 256 KiB per shard).
var defaultRing = protocol.RingConfig{NumSub: ring.DefaultNumSub, SubSize: ring.DefaultSubSize}

// New creates the daemon's directory and sockets. Call Serve to accept.
func New(cfg Config) (*Daemon, error) {
	if cfg.Dir == "" {
		return nil, errors.New("daemon: no directory given")
	}
	if cfg.OutputRoot == "" {
		cfg.OutputRoot = filepath.Join(cfg.Dir, "traces")
	}
	if cfg.DrainInterval <= 0 {
		cfg.DrainInterval = 10 * time.Millisecond
	}
	if cfg.Ring.NumSub == 0 {
		cfg.Ring.NumSub = defaultRing.NumSub
	}
	if cfg.Ring.SubSize == 0 {
		cfg.Ring.SubSize = defaultRing.SubSize
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if err := os.MkdirAll(cfg.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("daemon: make directory: %w", err)
	}
	sc, err := scope.Self()
	if err != nil {
		return nil, fmt.Errorf("daemon: %w", err)
	}
	d := &Daemon{cfg: cfg, log: cfg.Log, scope: sc, rt: newRTGate(cfg, cfg.Log), apps: make(map[*app]struct{}), sessions: make(map[string]*session),
		downs: make(map[*downstream]struct{}), quit: make(chan struct{})}
	if d.agentLn, err = listen(filepath.Join(cfg.Dir, AgentSocket), 0o666); err != nil {
		sc.Close()
		return nil, err
	}
	if d.ctlLn, err = listen(filepath.Join(cfg.Dir, ControlSocket), 0o600); err != nil {
		d.agentLn.Close()
		sc.Close()
		return nil, err
	}
	return d, nil
}

// listen binds a unixpacket socket at path, replacing a stale one.
func listen(path string, mode os.FileMode) (*net.UnixListener, error) {
	if c, err := net.Dial("unixpacket", path); err == nil {
		c.Close()
		return nil, fmt.Errorf("daemon: %s is in use by a running daemon", path)
	}
	os.Remove(path) // stale socket from a daemon that died
	// Bind under a temporary name and rename, so that an agent watching the
	// directory sees the socket appear only once it is listening.
	tmp := path + ".new"
	os.Remove(tmp)
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: tmp, Net: "unixpacket"})
	if err != nil {
		return nil, fmt.Errorf("daemon: listen on %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("daemon: chmod %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		return nil, fmt.Errorf("daemon: publish %s: %w", path, err)
	}
	return ln, nil
}

// Dir returns the daemon's directory.
func (d *Daemon) Dir() string { return d.cfg.Dir }

// Serve accepts agents and clients until Close. It returns nil after Close.
func (d *Daemon) Serve() error {
	if d.cfg.Parent != "" {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.runUpstream()
		}()
	}
	errc := make(chan error, 2)
	go func() { errc <- d.acceptLoop(d.agentLn, d.serveAgent) }()
	go func() { errc <- d.acceptLoop(d.ctlLn, d.serveClient) }()
	err := <-errc
	if err2 := <-errc; err == nil {
		err = err2
	}
	return err
}

func (d *Daemon) acceptLoop(ln *net.UnixListener, handle func(*net.UnixConn)) error {
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			d.mu.Lock()
			closed := d.closed
			d.mu.Unlock()
			if closed {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("daemon: accept: %w", err)
		}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			handle(c)
		}()
	}
}

// Close stops accepting, stops every session (each app flushes, the
// consumers drain and recover every ring) and returns when all is written.
// Every call waits for the first to finish.
func (d *Daemon) Close() error {
	d.closeOnce.Do(d.close)
	return nil
}

func (d *Daemon) close() {
	d.mu.Lock()
	d.closed = true
	close(d.quit)
	sessions := slices.Collect(maps.Values(d.sessions))
	d.mu.Unlock()
	for _, s := range sessions {
		d.stopSession(s)
	}
	d.agentLn.Close()
	d.ctlLn.Close()
	os.Remove(filepath.Join(d.cfg.Dir, AgentSocket))
	os.Remove(filepath.Join(d.cfg.Dir, ControlSocket))
	d.mu.Lock()
	apps := slices.Collect(maps.Keys(d.apps))
	d.mu.Unlock()
	for _, a := range apps {
		a.conn.Close()
	}
	d.mu.Lock()
	links := make([]agentConn, 0, len(d.downs)+1)
	for down := range d.downs {
		links = append(links, down.conn)
	}
	if d.up != nil {
		links = append(links, d.up.conn)
	}
	d.mu.Unlock()
	for _, c := range links {
		c.Close()
	}
	d.wg.Wait()
	d.scope.Close()
}
