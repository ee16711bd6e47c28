package daemon

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/protocol"
	"github.com/usertrace/usertrace/ring"
)

// maxLocalIDs bounds the session-local ids an app may declare for one ring.
const maxLocalIDs = 1 << 16

// stream is one app's ring in one session, and the consumer that drains it
// into a trace directory of its own.
type stream struct {
	s    *session
	a    *app
	r    *ring.Reader // used by the consumer goroutine only, after start
	info ring.Info
	dir  *ctf.Dir

	mu     sync.Mutex
	events []*catalog.Event // by session-local id; guarded by mu
	descMu sync.Mutex       // serializes writeDescriptions; before mu

	finishOnce sync.Once
	finishCh   chan struct{} // closed: the ring has no writer any more
	done       chan struct{} // closed: everything is on disk

	packets, bytes, nevents, corrupt atomic.Uint64
	discarded                        []atomic.Uint64 // per shard: the latest packet's count
}

func newStream(s *session, a *app, r *ring.Reader) (*stream, error) {
	st := &stream{s: s, a: a, r: r, info: r.Info(), finishCh: make(chan struct{}), done: make(chan struct{})}
	st.discarded = make([]atomic.Uint64, st.info.NumShards)
	path := s.streamPath(a)
	md, err := st.metadata()
	if err != nil {
		return nil, err
	}
	if st.dir, err = ctf.CreateDir(path, md); err != nil {
		return nil, err
	}
	if err := st.writeInfo(); err != nil {
		st.dir.Close()
		return nil, err
	}
	return st, nil
}

// addIDs records session-local ids and rewrites the metadata (invariant 3).
func (st *stream) addIDs(ids []protocol.IDMap) error {
	st.mu.Lock()
	for _, m := range ids {
		if m.Local >= maxLocalIDs {
			st.mu.Unlock()
			return fmt.Errorf("session-local id %d out of range (< %d)", m.Local, maxLocalIDs)
		}
		e := st.a.event(m.EventID)
		if e == nil {
			st.mu.Unlock()
			return fmt.Errorf("ring names event %d, which the app never described", m.EventID)
		}
		for int(m.Local) >= len(st.events) {
			st.events = append(st.events, nil)
		}
		if old := st.events[m.Local]; old != nil && old != e {
			st.mu.Unlock()
			return fmt.Errorf("session-local id %d given to both %s and %s", m.Local, old.FullName(), e.FullName())
		}
		st.events[m.Local] = e
	}
	st.mu.Unlock()
	return st.writeDescriptions()
}

// SidecarDir is the hidden directory in each trace directory where the
// daemon keeps what usertrace's own tools read faster than TSDL: the event
// descriptions in the catalog encoding, with ids set to the session-local
// ids of the event headers (SidecarCatalog), and facts about the stream
// (SidecarInfo). babeltrace2 ignores hidden files.
const (
	SidecarDir     = ".usertrace"
	SidecarCatalog = "catalog"
	SidecarInfo    = "trace.json"
)

// TraceInfo is the content of SidecarInfo.
type TraceInfo struct {
	UUID        string `json:"uuid"`
	ClockOffset int64  `json:"clock_offset_ns"` // wall time = timestamp + offset
	App         string `json:"app"`
	PID         int    `json:"pid"`
	Session     string `json:"session"`
	Shards      int    `json:"shards"`
}

// writeDescriptions rewrites the metadata and the sidecar catalog
// (invariant 3).
func (st *stream) writeDescriptions() error {
	st.descMu.Lock() // the newest descriptions are written last
	defer st.descMu.Unlock()
	md, err := st.metadata()
	if err != nil {
		return err
	}
	st.mu.Lock()
	local := make([]*catalog.Event, 0, len(st.events))
	for id, e := range st.events {
		if e != nil {
			c := *e
			c.ID = uint32(id)
			local = append(local, &c)
		}
	}
	st.mu.Unlock()
	if err := writeFileAtomic(filepath.Join(st.dir.Path(), SidecarDir, SidecarCatalog), catalog.AppendCatalog(nil, local)); err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(st.dir.Path(), "metadata"), []byte(md))
}

func (st *stream) writeInfo() error {
	if err := os.MkdirAll(filepath.Join(st.dir.Path(), SidecarDir), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(TraceInfo{
		UUID: ctf.FormatUUID(st.info.UUID), ClockOffset: st.info.ClockOffset,
		App: st.a.name, PID: st.a.pid, Session: st.s.name, Shards: st.info.NumShards,
	}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(st.dir.Path(), SidecarDir, SidecarInfo), append(b, '\n'))
}

func (st *stream) metadata() (string, error) {
	st.mu.Lock()
	evs := append([]*catalog.Event(nil), st.events...)
	st.mu.Unlock()
	return ctf.Metadata(ctf.Trace{
		UUID:        st.info.UUID,
		ClockOffset: st.info.ClockOffset,
		Events:      evs,
		Env: map[string]string{
			"tracer_name":   "usertrace",
			"procname":      st.a.name,
			"app_pid":       fmt.Sprint(st.a.pid),
			"session":       st.s.name,
			"trace_creator": "usertraced",
		},
	})
}

// writeFileAtomic replaces path with b: readers see the old file or the new
// one, never a mix. Concurrent writers each use their own temporary file.
func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	return os.Rename(f.Name(), path)
}

func (st *stream) start() {
	st.s.d.wg.Add(1)
	go func() {
		defer st.s.d.wg.Done()
		st.run()
	}()
}

// finish says the ring has no writer any more: drain it to the end.
func (st *stream) finish() { st.finishOnce.Do(func() { close(st.finishCh) }) }

// abort drops a stream that never started.
func (st *stream) abort() {
	st.r.Close()
	st.dir.Close()
	os.RemoveAll(st.dir.Path())
}

func (st *stream) run() {
	defer close(st.done)
	buf := make([]byte, st.info.SubSize)
	t := time.NewTicker(st.s.d.cfg.DrainInterval)
	defer t.Stop()
	for {
		st.drain(buf)
		select {
		case <-st.finishCh:
			st.drain(buf)
			dropped, err := st.r.Recover(st.write)
			if err != nil || dropped > 0 {
				st.s.d.log.Warn("ring recovery was not exact", "app", st.a.pid, "dropped_partial_packets", dropped, "err", err)
			}
			// The final metadata knows every id the agent reported.
			if err := st.writeDescriptions(); err != nil {
				st.s.d.log.Error("writing trace metadata", "path", st.dir.Path(), "err", err)
			}
			st.r.Close()
			if err := st.dir.Close(); err != nil {
				st.s.d.log.Error("closing trace files", "path", st.dir.Path(), "err", err)
			}
			return
		case <-t.C:
		}
	}
}

// drain writes every complete packet now in the ring.
func (st *stream) drain(buf []byte) {
	for {
		shard, pkt, err := st.r.Next(buf)
		if errors.Is(err, ring.ErrEmpty) {
			return
		}
		if err != nil {
			st.corrupt.Add(1)
			if errors.Is(err, ring.ErrCorrupt) {
				continue // the reader skipped the bad packet
			}
			st.s.d.log.Warn("ring read failed", "app", st.a.pid, "err", err)
			return
		}
		if err := st.write(shard, pkt); err != nil {
			st.s.d.log.Error("writing trace", "path", st.dir.Path(), "err", err)
			return
		}
	}
}

// write appends one packet to its stream file and counts it.
func (st *stream) write(shard int, pkt []byte) error {
	if err := st.dir.WritePacket(shard, pkt); err != nil {
		return err
	}
	st.packets.Add(1)
	st.bytes.Add(uint64(len(pkt)))
	if h, err := ctf.ParsePacketHeader(pkt); err == nil && shard < len(st.discarded) {
		st.discarded[shard].Store(h.EventsDiscarded)
	}
	st.mu.Lock()
	evs := st.events
	st.mu.Unlock()
	n := uint64(0)
	ctf.Events(pkt, evs, func(ctf.Event) bool { n++; return true })
	st.nevents.Add(n)
	return nil
}

func (st *stream) stats() (packets, bytes, events, discarded uint64) {
	for i := range st.discarded {
		discarded += st.discarded[i].Load()
	}
	return st.packets.Load(), st.bytes.Load(), st.nevents.Load(), discarded
}
