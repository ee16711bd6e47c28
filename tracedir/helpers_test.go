package tracedir

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/tracer"
	"github.com/usertrace/usertrace/ust"
)

// recording is a user-space tracer whose ring is drained into a trace
// directory the way the daemon does it (daemon/stream.go): metadata, the
// packets of each shard appended to stream_<shard>, and the sidecar.
type recording struct {
	t   testing.TB
	tr  *ust.Tracer
	r   *ring.Reader
	dir string
	app string
	pid int
}

func newRecording(t testing.TB, dir, app string, pid int, cfg ring.Config) *recording {
	t.Helper()
	tr, err := ust.New(ust.Config{Ring: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tr.Close() })
	r, err := tr.Ring().NewReader()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return &recording{t: t, tr: tr, r: r, dir: dir, app: app, pid: pid}
}

// attach attaches the tracer to p and returns the session-local id.
func (rec *recording) attach(p *tracer.Point) uint32 {
	rec.t.Helper()
	id, err := rec.tr.Attach(p)
	if err != nil {
		rec.t.Fatal(err)
	}
	return id
}

// register gives an event a session-local id without attaching, for
// writes to an explicit shard with write.
func (rec *recording) register(e catalog.Event) (*catalog.Event, uint32) {
	rec.t.Helper()
	p, err := tracer.Register(e)
	if err != nil {
		rec.t.Fatal(err)
	}
	id, err := rec.tr.Register(p.Desc())
	if err != nil {
		rec.t.Fatal(err)
	}
	return p.Desc(), id
}

// write writes a record into a chosen shard of the tracer's ring.
func (rec *recording) write(shard int, id uint32, payload []byte) {
	if !rec.tr.Ring().Write(shard, id, payload) {
		rec.t.Fatalf("ring write to shard %d failed", shard)
	}
}

// drain flushes the ring and appends every complete packet to the trace
// directory, then (re)writes the metadata and the sidecar.
func (rec *recording) drain() {
	rec.t.Helper()
	rec.tr.Flush()
	meta, err := rec.tr.Metadata()
	if err != nil {
		rec.t.Fatal(err)
	}
	d, err := ctf.CreateDir(rec.dir, meta)
	if err != nil {
		rec.t.Fatal(err)
	}
	defer d.Close()
	w := rec.tr.Ring()
	info := Info{
		UUID: ctf.FormatUUID(w.UUID()), ClockOffset: w.ClockOffset(),
		App: rec.app, PID: rec.pid, Session: "test", Shards: w.Geometry().NumShards,
	}
	info.SetClock(w.Info().LastClock()) // the metadata's
	if err := WriteSidecar(rec.dir, rec.tr.Events(), info); err != nil {
		rec.t.Fatal(err)
	}
	var buf []byte
	for {
		sh, pkt, err := rec.r.Next(buf)
		if errors.Is(err, ring.ErrEmpty) {
			return
		}
		if err != nil {
			rec.t.Fatal(err)
		}
		buf = pkt
		if err := d.WritePacket(sh, pkt); err != nil {
			rec.t.Fatal(err)
		}
	}
}

func (rec *recording) streamPath(shard int) string {
	return filepath.Join(rec.dir, "stream_"+itoa(shard))
}

func itoa(i int) string { return string(appendUint(nil, uint64(i))) }

func typ(k catalog.Kind) catalog.Type { return catalog.Type{Kind: k} }

// three is the benchmark event: uint64, uint32, 16-byte string (29 bytes).
var threeDesc = catalog.Event{Provider: "bench", Name: "three", Fields: []catalog.Field{
	{Name: "a", Type: typ(catalog.Uint64)},
	{Name: "b", Type: typ(catalog.Uint32)},
	{Name: "s", Type: typ(catalog.String)},
}}

func threePayload(b []byte, a uint64, n uint32) []byte {
	b = catalog.AppendUint64(b[:0], a)
	b = catalog.AppendUint32(b, n)
	return catalog.AppendString(b, "0123456789abcdef")
}
