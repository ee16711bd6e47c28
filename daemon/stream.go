package daemon

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/internal/atomicfile"
	"github.com/usertrace/usertrace/internal/sched"
	"github.com/usertrace/usertrace/protocol"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/tracedir"
)

// idlePoll is how often a consumer looks at a ring that has been empty for a
// second; busyPoll, at a ring that had data within busyFor.
const (
	idlePoll = 100 * time.Millisecond
	busyPoll = 500 * time.Microsecond
)

// busyFor is how long a ring counts as busy after its last packet (looked at
// every busyPoll), and as filling fast after a look that found two packets
// or more (drained from a real-time thread, counting deferred).
const busyFor = 10 * time.Millisecond

// countBatch is how many deferred packets a consumer counts per look once
// its ring is no longer filling fast (a 256 KiB packet of 33-byte events
// takes ~0.15 ms).
const countBatch = 16

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

	mu        sync.Mutex
	events    []*catalog.Event // by session-local id; guarded by mu
	idVersion uint64           // changes with events; guarded by mu
	lay       *ctf.Layout      // of events at layVer; guarded by mu
	layVer    uint64           // guarded by mu
	descMu    sync.Mutex       // serializes writeDescriptions; before mu

	rmu     sync.Mutex    // serializes use of r: the consumer and snapshots
	flushed chan struct{} // the agent answered a Flush

	finishOnce sync.Once
	finishCh   chan struct{} // closed: the ring has no writer any more
	done       chan struct{} // closed: everything is on disk

	// Consumer goroutine only:
	offsets    map[int]int64 // bytes written per shard file
	walker     ctf.Walker
	countBuf   []byte   // a packet read back by countDeferred
	recount    []pktRef // packets write left uncounted
	countAtEnd []pktRef // packets to count when the stream closes
	busy       bool     // the ring is busy: defer counting

	packets, bytes, nevents, corrupt atomic.Uint64
	discarded                        []atomic.Uint64 // per shard: the latest packet's count
}

func newStream(s *session, a *app, r *ring.Reader) (*stream, error) {
	st := &stream{s: s, a: a, r: r, info: r.Info(), finishCh: make(chan struct{}), done: make(chan struct{}), offsets: map[int]int64{}, flushed: make(chan struct{}, 1)}
	st.discarded = make([]atomic.Uint64, st.info.NumShards)
	path := s.streamPath(a)
	md, err := st.metadata()
	if err != nil {
		return nil, err
	}
	if st.dir, err = ctf.CreateDir(path, md); err != nil {
		return nil, err
	}
	if err := st.writeDescriptions(); err != nil {
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
		if st.events[m.Local] == nil {
			st.events[m.Local] = e
			st.idVersion++
		}
	}
	st.mu.Unlock()
	return st.writeDescriptions()
}

// sidecarInfo describes the trace for the sidecar, with the clock that the
// metadata written just before it has (ring.Info.LastClock: metadata() is
// called first), so that tracedir and babeltrace2 agree to the ns.
func (st *stream) sidecarInfo() tracedir.Info {
	info := tracedir.Info{
		UUID: ctf.FormatUUID(st.info.UUID), ClockOffset: st.info.ClockOffset,
		App: st.a.name, PID: st.a.pid, Session: st.s.name, Shards: st.info.NumShards,
		HelloPID: st.a.helloPID, Depth: st.a.peer.Depth, Namespaces: st.a.peer.NS.Map(),
	}
	info.SetClock(st.info.LastClock())
	return info
}

// writeDescriptions rewrites the metadata and the sidecar catalog
// (invariant 3).
func (st *stream) metadata() (string, error) {
	st.mu.Lock()
	evs := append([]*catalog.Event(nil), st.events...)
	st.mu.Unlock()
	env := map[string]string{
		"tracer_name":   "usertrace",
		"procname":      st.a.name,
		"app_pid":       fmt.Sprint(st.a.pid),
		"app_hello_pid": fmt.Sprint(st.a.helloPID), // what the app said: not trusted
		"pidns_depth":   fmt.Sprint(st.a.peer.Depth),
		"session":       st.s.name,
		"trace_creator": "usertraced",
	}
	for k, v := range st.a.peer.NS.Map() {
		env["ns_"+k] = fmt.Sprint(v)
	}
	// The clock is measured now (ring.Info.Clock): the final metadata,
	// written when the ring is done, maps every event exactly.
	return ctf.Metadata(ctf.Trace{
		UUID:   st.info.UUID,
		Clock:  st.info.Clock(),
		Events: evs,
		Env:    env,
	})
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
	evs := append([]*catalog.Event(nil), st.events...)
	st.mu.Unlock()
	if err := tracedir.WriteSidecar(st.dir.Path(), evs, st.sidecarInfo()); err != nil {
		return err
	}
	return atomicfile.Write(filepath.Join(st.dir.Path(), "metadata"), []byte(md), 0o644)
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
	base := st.s.d.cfg.DrainInterval
	t := time.NewTimer(base)
	defer t.Stop()
	if st.info.Overwrite {
		// A flight recorder: the ring keeps the newest data until the
		// session stops (or a snapshot copies it); then its content is the
		// trace.
		<-st.finishCh
		st.rmu.Lock()
		if err := st.r.Snapshot(st.write); err != nil {
			st.s.d.log.Warn("reading flight-recorder ring", "app", st.a.pid, "err", err)
		}
		st.rmu.Unlock()
		st.close()
		return
	}
	// How often to look depends on when data last came: within the last
	// 10 ms (and at the start, when a program often bursts at once) every
	// busyPoll, so that a ring of a few MiB never fills between two looks;
	// within the last second every DrainInterval; after that every idlePoll
	// (100 idle apps then cost the daemon about 1 % of a core, not 7 %).
	//
	// A ring is filling fast when a look found two packets or more (more
	// than one per busyPoll: ≥ 0.5 GB/s with the default geometry). Within
	// busyFor of that the consumer drains from a real-time thread and
	// sleeps in the kernel, so that it runs the moment its sleep ends even
	// when the programs keep every CPU busy (realtime.go), and leaves
	// counting for later: walking events costs 15–25 ns each, about as much
	// as the rest of draining.
	lastData, lastFast := time.Now(), time.Now()
	rt := realtime{gate: st.s.d.rt}
	defer rt.release()
	perLook := st.info.NumShards * st.info.NumSub // a ring's worth
	for {
		start := time.Now()
		st.busy = start.Sub(lastFast) < busyFor
		st.rmu.Lock()
		n, more := st.drain(perLook)
		st.rmu.Unlock()
		now := time.Now()
		if n > 0 {
			lastData = now
		}
		if n >= 2 {
			lastFast = now
		}
		fast := now.Sub(lastFast) < busyFor
		rt.update(fast, now.Sub(start), now)
		if !fast && len(st.recount) > 0 {
			// Count what a burst left, a batch per look, so that a new
			// burst waits at most one batch to be drained.
			st.countDeferred(countBatch, false)
		}
		// Wait for the next look: none after a look that stopped at a
		// ring's worth; a sleep in the kernel while real-time and busy;
		// else a Go timer, which the end of the stream cuts short.
		switch quiet := now.Sub(lastData); {
		case more:
		case rt.active() && quiet < busyFor:
			sched.Sleep(busyPoll)
		default:
			wait := busyPoll
			if quiet >= busyFor {
				wait = base
				if quiet >= time.Second && len(st.recount) == 0 {
					wait = max(base, idlePoll)
				}
			}
			t.Reset(wait)
			select {
			case <-st.finishCh:
			case <-t.C:
			}
		}
		select {
		case <-st.finishCh:
			st.drainToEnd(&rt)
			return
		default:
		}
	}
}

// drainToEnd drains a ring that has no writer any more, recovers what the
// writer committed without closing a packet, leaves the real-time class,
// and closes the stream (which counts what was deferred).
func (st *stream) drainToEnd(rt *realtime) {
	st.rmu.Lock()
	defer st.rmu.Unlock()
	// A ring without a writer holds at most a ring's worth of packets; a
	// hostile app that goes on writing through a mapping it kept gets no
	// more.
	st.drain(st.info.NumShards * st.info.NumSub)
	before := st.packets.Load()
	dropped, err := st.r.Recover(st.write)
	if err != nil || dropped > 0 {
		st.s.d.log.Warn("ring recovery was not exact", "app", st.a.pid, "dropped_partial_packets", dropped, "err", err)
	}
	st.s.d.log.Debug("ring drained", "app", st.a.pid, "session", st.s.name, "packets", st.packets.Load(), "recovered", st.packets.Load()-before)
	rt.release()
	st.close()
}

// close writes the final descriptions, unmaps the ring and closes the files.
func (st *stream) close() {
	// The final metadata knows every id the agent reported.
	if err := st.writeDescriptions(); err != nil {
		st.s.d.log.Error("writing trace metadata", "path", st.dir.Path(), "err", err)
	}
	// Drops are reported in the next packet a writer closes, so the last
	// ones may be in none: the writer's own counters have them all.
	for shard := range st.discarded {
		if n := st.r.Lost(shard); n > st.discarded[shard].Load() {
			st.discarded[shard].Store(n)
		}
	}
	st.r.Close()
	if err := st.dir.Close(); err != nil {
		st.s.d.log.Error("closing trace files", "path", st.dir.Path(), "err", err)
	}
	st.countDeferred(0, true)
}

// snapshot copies the complete packets now in a flight-recorder ring into a
// new trace directory, without consuming them.
func (st *stream) snapshot(dir string) (events uint64, err error) {
	md, err := st.metadata()
	if err != nil {
		return 0, err
	}
	d, err := ctf.CreateDir(dir, md)
	if err != nil {
		return 0, err
	}
	st.mu.Lock()
	evs := append([]*catalog.Event(nil), st.events...)
	st.mu.Unlock()
	if err := tracedir.WriteSidecar(dir, evs, st.sidecarInfo()); err != nil {
		d.Close()
		return 0, err
	}
	st.rmu.Lock()
	select {
	case <-st.done:
		st.rmu.Unlock()
		d.Close()
		return 0, fmt.Errorf("the ring of %s/%d is closed", st.a.name, st.a.pid)
	default:
	}
	err = st.r.Snapshot(func(shard int, pkt []byte) error {
		ctf.Events(pkt, evs, func(ctf.Event) bool { events++; return true })
		return d.WritePacket(shard, pkt)
	})
	st.rmu.Unlock()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return events, err
}

// drain writes the complete packets now in the ring, at most max of them
// (corrupt ones included) if max > 0. It returns how many it wrote, and
// more if it stopped at max.
func (st *stream) drain(max int) (n int, more bool) {
	for looked := 0; max <= 0 || looked < max; looked++ {
		// Straight from the shared memory to the file: no copy of the
		// packet (only its header, which WriteNextTo checks).
		_, _, err := st.r.WriteNextTo(st.shardFile)
		if errors.Is(err, ring.ErrEmpty) {
			return n, false
		}
		if err != nil {
			st.corrupt.Add(1)
			if errors.Is(err, ring.ErrCorrupt) {
				continue // the reader skipped the bad packet
			}
			st.s.d.log.Warn("ring read failed", "app", st.a.pid, "err", err)
			return n, false
		}
		n++
	}
	return n, true
}

func (st *stream) shardFile(shard int) io.Writer { return shardFile{st, shard} }

// shardFile appends the packets ring.Reader.WriteNextTo hands it to one
// shard's stream file.
type shardFile struct {
	st    *stream
	shard int
}

func (f shardFile) Write(pkt []byte) (int, error) {
	if err := f.st.write(f.shard, pkt); err != nil {
		f.st.s.d.log.Error("writing trace", "path", f.st.dir.Path(), "err", err)
		return 0, err
	}
	return len(pkt), nil
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
	off := st.offsets[shard]
	st.offsets[shard] += int64(len(pkt))
	if st.busy {
		// Walking costs 15-25 ns per event: under load, count later,
		// from the file, so the ring is emptied first.
		st.recount = append(st.recount, pktRef{shard, off, len(pkt)})
		return nil
	}
	n, err := countEvents(&st.walker, pkt, st.layout())
	if err != nil {
		// Most likely an event whose id the agent has not reported yet:
		// count this packet again at the end, from the file.
		st.recount = append(st.recount, pktRef{shard, off, len(pkt)})
		return nil
	}
	st.nevents.Add(n)
	return nil
}

// pktRef locates a packet in a stream file.
type pktRef struct {
	shard int
	off   int64
	size  int
}

// countDeferred counts, from the stream files, the events of up to max
// packets that write left uncounted (all of them if max <= 0). A packet it
// cannot walk yet (an event id the agent has not reported) waits for the
// final count, made when the stream closes.
func (st *stream) countDeferred(max int, final bool) {
	if final {
		st.recount = append(st.countAtEnd, st.recount...)
		st.countAtEnd = nil
	}
	lay := st.layout()
	files := map[int]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if st.countBuf == nil {
		st.countBuf = make([]byte, st.info.SubSize)
	}
	buf := st.countBuf
	var later []pktRef
	for i, p := range st.recount {
		if max > 0 && i == max {
			later = append(later, st.recount[i:]...)
			break
		}
		f := files[p.shard]
		if f == nil {
			var err error
			if f, err = os.Open(filepath.Join(st.dir.Path(), fmt.Sprintf("stream_%d", p.shard))); err != nil {
				if !final {
					st.countAtEnd = append(st.countAtEnd, p)
				}
				continue
			}
			files[p.shard] = f
		}
		if p.size > len(buf) {
			continue // write never gives a packet larger than a sub-buffer
		}
		if _, err := f.ReadAt(buf[:p.size], p.off); err != nil {
			if !final {
				st.countAtEnd = append(st.countAtEnd, p)
			}
			continue
		}
		n, err := countEvents(&st.walker, buf[:p.size], lay)
		if err != nil && !final {
			st.countAtEnd = append(st.countAtEnd, p)
			continue
		}
		st.nevents.Add(n)
	}
	st.recount = later
}

func (st *stream) stats() (packets, bytes, events, discarded uint64) {
	for i := range st.discarded {
		discarded += st.discarded[i].Load()
	}
	return st.packets.Load(), st.bytes.Load(), st.nevents.Load(), discarded
}

// layout returns the walk layout of the stream's events, compiled again
// when addIDs has given more ids.
func (st *stream) layout() *ctf.Layout {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.lay == nil || st.layVer != st.idVersion {
		st.lay = ctf.NewLayout(append([]*catalog.Event(nil), st.events...))
		st.layVer = st.idVersion
	}
	return st.lay
}

// countEvents counts the events of pkt (with the checks of ctf.Events, at
// about two thirds of its cost). On a malformed packet it returns the
// events before the fault and the error.
func countEvents(w *ctf.Walker, pkt []byte, l *ctf.Layout) (uint64, error) {
	n := uint64(0)
	w.Reset(pkt, l)
	for w.Next() {
		n++
	}
	return n, w.Err()
}
