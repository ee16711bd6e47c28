package tracedir

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/internal/atomicfile"
	"github.com/usertrace/usertrace/ring"
)

// Names inside a trace directory, as the daemon writes them.
const (
	MetadataFile = "metadata"   // CTF 1.8 TSDL
	StreamPrefix = "stream_"    // stream_<shard>: the shard's packets back to back
	SidecarDir   = ".usertrace" // hidden: babeltrace2 skips it
	CatalogFile  = "catalog"    // in SidecarDir: catalog.AppendCatalog, ID = session-local id
	InfoFile     = "trace.json" // in SidecarDir: [Info]
)

// Limits on what Open accepts from files it does not trust.
const (
	// MaxCatalogSize bounds the sidecar catalog.
	MaxCatalogSize = 64 << 20
	// MaxInfoSize bounds trace.json.
	MaxInfoSize = 1 << 20
	// MaxEventID bounds session-local event ids (the daemon hands out fewer).
	MaxEventID = 1<<16 - 1
	// MaxPacketSize bounds a packet: the largest ring sub-buffer.
	MaxPacketSize = ring.MaxSubSize
)

// Info is the content of the sidecar trace.json: facts about the ring the
// trace was drained from. It has the JSON form of daemon.TraceInfo.
type Info struct {
	UUID string `json:"uuid"` // the trace uuid, canonical form; every packet carries it
	// ClockOffset is wall-clock minus CLOCK_MONOTONIC in ns at the ring's
	// creation. Without ClockFreq (traces written before timestamps could
	// be TSC ticks), wall time (ns since the epoch) = timestamp +
	// ClockOffset.
	ClockOffset int64 `json:"clock_offset_ns"`
	// The trace clock, as in the metadata's clock block (see ctf.Clock):
	// wall time = ClockOffsetS s + (ClockOffsetCycles + timestamp) /
	// ClockFreq s. ClockTSC: timestamps are x86 TSC ticks. Set them with
	// [Info.SetClock]; read them with [Info.Clock].
	ClockFreq         uint64 `json:"clock_freq,omitempty"`
	ClockOffsetS      int64  `json:"clock_offset_s,omitempty"`
	ClockOffsetCycles uint64 `json:"clock_offset_cycles,omitempty"`
	ClockTSC          bool   `json:"clock_tsc,omitempty"`
	App               string `json:"app"`
	PID               int    `json:"pid"`
	Session           string `json:"session"`
	Shards            int    `json:"shards"`
	// HelloPID is the pid the app said it had: recorded, never trusted.
	HelloPID int `json:"hello_pid,omitempty"`
	// Depth is how many pid namespaces below the recording daemon's the
	// app lived; Namespaces are its namespace ids (NS_GET_ID) keyed pid,
	// mnt, net, user, cgroup, which tell containers apart.
	Depth      int               `json:"pidns_depth,omitempty"`
	Namespaces map[string]uint64 `json:"namespaces,omitempty"`
}

// SetClock records the trace clock c (the one of the metadata) in i.
func (i *Info) SetClock(c ctf.Clock) {
	if c.Freq == 0 {
		c.Freq = 1e9
	}
	i.ClockFreq, i.ClockOffsetS, i.ClockOffsetCycles, i.ClockTSC = c.Freq, c.OffsetS, c.Offset, c.TSC
}

// Clock returns the trace clock: the recorded one, or for a sidecar
// without it, ns timestamps at ClockOffset.
func (i *Info) Clock() ctf.Clock {
	if i.ClockFreq == 0 {
		return ctf.NSClock(i.ClockOffset)
	}
	return ctf.Clock{Freq: i.ClockFreq, OffsetS: i.ClockOffsetS, Offset: i.ClockOffsetCycles, TSC: i.ClockTSC}
}

// WriteSidecar writes the hidden sidecar of a trace directory, as the daemon
// does: SidecarDir/CatalogFile, the events in the catalog encoding with each
// event's ID set to its index in events (the session-local id of the event
// headers; nil entries are left out), and SidecarDir/InfoFile. Each file is
// replaced atomically (written aside, then renamed), so a reader never sees
// half of one. The events are not modified.
func WriteSidecar(dir string, events []*catalog.Event, info Info) error {
	sd := filepath.Join(dir, SidecarDir)
	if err := os.MkdirAll(sd, 0o755); err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	local := make([]*catalog.Event, 0, len(events))
	for id, e := range events {
		if e != nil {
			c := *e
			c.ID = uint32(id)
			local = append(local, &c)
		}
	}
	if err := atomicfile.Write(filepath.Join(sd, CatalogFile), catalog.AppendCatalog(nil, local), 0o644); err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	b, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	if err := atomicfile.Write(filepath.Join(sd, InfoFile), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write sidecar: %w", err)
	}
	return nil
}

// IsTraceDir reports whether dir holds a trace written by usertrace: a
// metadata file and a sidecar catalog.
func IsTraceDir(dir string) bool {
	st, err := os.Stat(filepath.Join(dir, MetadataFile))
	if err != nil || !st.Mode().IsRegular() {
		return false
	}
	st, err = os.Stat(filepath.Join(dir, SidecarDir, CatalogFile))
	return err == nil && st.Mode().IsRegular()
}

// Find returns every trace directory at or under root (see [IsTraceDir]),
// sorted. It does not follow symbolic links or look inside sidecars. An
// unreadable directory under root is an error; none found is not.
func Find(root string) ([]string, error) {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if d.Name() == SidecarDir {
			return filepath.SkipDir
		}
		if IsTraceDir(path) {
			dirs = append(dirs, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("find traces: %w", err)
	}
	slices.Sort(dirs)
	return dirs, nil
}

// Trace is one trace directory opened for reading: the events of its
// sidecar catalog, its sidecar info, and its stream files. Read its events
// with a [Reader]. A Trace holds one open file per stream; Close it.
type Trace struct {
	Dir  string
	Info Info
	UUID [16]byte
	// Clock maps the trace's timestamps to wall time (Info.Clock).
	Clock ctf.Clock
	// Events are the trace's event descriptions indexed by session-local
	// id, with nil for ids not in the catalog. Do not modify them.
	Events []*catalog.Event
	// Catalog is the decoded sidecar catalog, with what the decoder skipped.
	Catalog *catalog.Decoded

	streams []*stream
	layout  *ctf.Layout // of Events, for the packet walks
	// Clock.Wall(v) = wallBase + ticks.Wall(v): one conversion per event,
	// not two (wallParts).
	wallBase int64
	ticks    ctf.Clock
	label    []byte // "app/pid", sanitized for one-line output
	errs     *errList
}

// Open opens the trace directory dir: it decodes the sidecar catalog and
// trace.json, and opens every stream file (stream_<shard>). Stream data is
// read later, a packet at a time, by a [Reader]; Open reads none of it.
//
// Errors: a missing file (wrapping fs.ErrNotExist), a catalog that does not
// decode (wrapping catalog.ErrCorrupt), an event id above MaxEventID or given
// twice, a trace.json that does not parse or has no valid uuid, or a failure
// to open a stream file. On error nothing stays open.
func Open(dir string) (*Trace, error) {
	t := &Trace{Dir: dir, errs: &errList{}}
	cb, err := readLimited(filepath.Join(dir, SidecarDir, CatalogFile), MaxCatalogSize)
	if err != nil {
		return nil, fmt.Errorf("open trace %s: %w", dir, err)
	}
	if t.Catalog, err = catalog.DecodeCatalog(cb); err != nil {
		return nil, fmt.Errorf("open trace %s: sidecar catalog: %w", dir, err)
	}
	maxID := -1
	for _, e := range t.Catalog.Events {
		if e.ID > MaxEventID {
			return nil, fmt.Errorf("open trace %s: sidecar catalog: event %s has id %d, above %d: %w", dir, e.FullName(), e.ID, MaxEventID, catalog.ErrCorrupt)
		}
		maxID = max(maxID, int(e.ID))
	}
	t.Events = make([]*catalog.Event, maxID+1)
	for _, e := range t.Catalog.Events {
		if old := t.Events[e.ID]; old != nil {
			return nil, fmt.Errorf("open trace %s: sidecar catalog: id %d given to both %s and %s: %w", dir, e.ID, old.FullName(), e.FullName(), catalog.ErrCorrupt)
		}
		t.Events[e.ID] = e
	}

	ib, err := readLimited(filepath.Join(dir, SidecarDir, InfoFile), MaxInfoSize)
	if err != nil {
		return nil, fmt.Errorf("open trace %s: %w", dir, err)
	}
	if err := json.Unmarshal(ib, &t.Info); err != nil {
		return nil, fmt.Errorf("open trace %s: %s: %w", dir, InfoFile, err)
	}
	if t.UUID, err = parseUUID(t.Info.UUID); err != nil {
		return nil, fmt.Errorf("open trace %s: %s: %w", dir, InfoFile, err)
	}
	t.Clock = t.Info.Clock()
	t.wallBase, t.ticks = wallParts(t.Clock)
	t.layout = ctf.NewLayout(t.Events)
	t.label = appendSanitized(nil, t.Info.App)
	t.label = append(t.label, '/')
	t.label = strconv.AppendInt(t.label, int64(t.Info.PID), 10)

	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("open trace %s: %w", dir, err)
	}
	type named struct {
		name  string
		shard int
	}
	var files []named
	for _, de := range ents {
		shard, ok := parseStreamName(de.Name())
		if !ok || !de.Type().IsRegular() {
			continue
		}
		files = append(files, named{de.Name(), shard})
	}
	if len(files) > ctf.MaxStreams {
		return nil, fmt.Errorf("open trace %s: %d stream files, more than %d", dir, len(files), ctf.MaxStreams)
	}
	slices.SortFunc(files, func(a, b named) int { return a.shard - b.shard })
	for _, nf := range files {
		f, err := os.Open(filepath.Join(dir, nf.name))
		if err != nil {
			t.Close()
			return nil, fmt.Errorf("open trace %s: %w", dir, err)
		}
		t.streams = append(t.streams, newStream(t, f, nf.name, nf.shard))
	}
	return t, nil
}

// Shards returns the shard numbers of the trace's stream files, ascending.
func (t *Trace) Shards() []int {
	s := make([]int, len(t.streams))
	for i, st := range t.streams {
		s[i] = st.shard
	}
	return s
}

// Close closes the stream files.
func (t *Trace) Close() error {
	var first error
	for _, s := range t.streams {
		if s.f != nil {
			if err := s.f.Close(); err != nil && first == nil {
				first = err
			}
			s.f = nil
		}
	}
	return first
}

func readLimited(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, limit)
	}
	return b, nil
}

// parseStreamName reads "stream_<shard>" with a decimal shard below
// ctf.MaxStreams.
func parseStreamName(name string) (int, bool) {
	s, ok := strings.CutPrefix(name, StreamPrefix)
	if !ok || s == "" || len(s) > 4 || (len(s) > 1 && s[0] == '0') {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, n < ctf.MaxStreams
}

func parseUUID(s string) ([16]byte, error) {
	var u [16]byte
	h := strings.ReplaceAll(s, "-", "")
	if len(h) != 32 || len(s) != 36 {
		return u, fmt.Errorf("uuid %q is not of the form xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", s)
	}
	if _, err := hex.Decode(u[:], []byte(h)); err != nil {
		return u, fmt.Errorf("uuid %q: %w", s, err)
	}
	return u, nil
}

// appendSanitized appends s with control characters and spaces replaced by
// '?', so that a hostile app name cannot break a line of output apart.
func appendSanitized(b []byte, s string) []byte {
	if s == "" {
		return append(b, '?')
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c == 0x7f {
			c = '?'
		}
		b = append(b, c)
	}
	return b
}

// maxErrs bounds the corruption errors a trace keeps; the rest are counted.
const maxErrs = 16

type errList struct {
	errs    []error
	corrupt uint64 // packets or byte ranges skipped
	skipped uint64 // bytes skipped while looking for the next packet
}

func (l *errList) add(err error) {
	l.corrupt++
	if len(l.errs) < maxErrs {
		l.errs = append(l.errs, err)
	}
}

// stream reads one stream file a packet at a time with pread, into a buffer
// it reuses: files may be far larger than memory, and a file that shrinks
// under us is only a short read (a mapping would fault).
type stream struct {
	t     *Trace
	f     *os.File
	name  string
	shard int
	idx   int   // position among all streams of a Reader, for ties
	pos   int64 // file offset of the next packet
	eof   bool

	buf     []byte     // the current packet
	walk    ctf.Walker // over buf: its next event, payloads aliasing buf
	walking bool       // walk has a packet whose end or fault is not reached
	at      int64      // file offset of the packet walked
	hdr     [ctf.PacketHeaderSize]byte

	mask      []bool // events to yield, by id; nil: all (Reader.Filter)
	discarded uint64 // events_discarded of the previous packet
	cur       Event  // the item at the front of this stream
	packets   uint64
	ioErr     error
}

func newStream(t *Trace, f *os.File, name string, shard int) *stream {
	s := &stream{t: t, f: f, name: name, shard: shard}
	s.cur.Trace = t
	s.cur.Shard = shard
	return s
}

func (s *stream) corrupt(at int64, err error) {
	s.t.errs.add(fmt.Errorf("%s: packet at byte %d: %w", filepath.Join(s.t.Dir, s.name), at, err))
}

// advance moves cur to the next item of the stream: the next event, or a
// lost-events notice in front of a packet whose events_discarded grew. It
// returns false at the end of the stream.
func (s *stream) advance() bool {
	for {
		if s.walking {
			w := &s.walk
			if w.Next() {
				s.cur.Lost = 0
				s.cur.Desc = s.t.Events[w.ID] // w.ID was checked by the walker
				s.cur.ID = w.ID
				s.cur.Timestamp = w.Timestamp
				s.cur.Wall = s.t.wallBase + s.t.ticks.Wall(w.Timestamp)
				s.cur.Payload = w.Payload
				return true
			}
			s.walking = false
			if err := w.Err(); err != nil {
				// The events before the fault were good; the rest of the
				// packet is dropped.
				s.corrupt(s.at, err)
			}
		}
		if !s.readPacket() {
			return false
		}
		if s.cur.Lost != 0 {
			return true // a notice first; the events follow
		}
	}
}

// readPacket reads the next packet of the file, skipping ones with a
// corrupt header, and starts the walk of its events. It sets cur to a
// notice when events_discarded grew. It returns false at the end of the
// file (or on an I/O error, kept in ioErr).
func (s *stream) readPacket() bool {
	s.cur.Lost = 0
	hdr := s.hdr[:] // in the stream: a local array would escape to ReadAt
	for !s.eof {
		at := s.pos
		n, err := s.f.ReadAt(hdr, at)
		if n < len(hdr) {
			if err != nil && err != io.EOF {
				s.fail(err)
				return false
			}
			if n > 0 {
				s.corrupt(at, fmt.Errorf("%w: file ends %d bytes into a packet header", ctf.ErrCorrupt, n))
			}
			s.eof = true
			return false
		}
		le := binary.LittleEndian
		if le.Uint32(hdr[ctf.OffMagic:]) != ctf.Magic || !bytes.Equal(hdr[ctf.OffUUID:ctf.OffUUID+16], s.t.UUID[:]) {
			s.corrupt(at, fmt.Errorf("%w: no packet header of this trace (magic %#x, uuid %x)", ctf.ErrCorrupt, le.Uint32(hdr[ctf.OffMagic:]), hdr[ctf.OffUUID:ctf.OffUUID+16]))
			s.resync(at)
			continue
		}
		bits := le.Uint64(hdr[ctf.OffPacketSize:])
		if bits%8 != 0 || bits < ctf.PacketHeaderSize*8 || bits > MaxPacketSize*8 {
			s.corrupt(at, fmt.Errorf("%w: packet_size %d bits out of range", ctf.ErrCorrupt, bits))
			s.resync(at)
			continue
		}
		size := int(bits / 8)
		if cap(s.buf) < size {
			s.buf = make([]byte, size)
		}
		pkt := s.buf[:size]
		n, err = s.f.ReadAt(pkt, at)
		if n < size {
			if err != nil && err != io.EOF {
				s.fail(err)
				return false
			}
			s.corrupt(at, fmt.Errorf("%w: file ends %d bytes into a %d-byte packet", ctf.ErrCorrupt, n, size))
			s.eof = true
			return false
		}
		h, err := s.walk.Reset(pkt, s.t.layout)
		if err != nil {
			s.corrupt(at, err)
			s.resync(at)
			continue
		}
		s.pos = at + int64(size)
		s.packets++
		s.at, s.walking = at, true
		if h.EventsDiscarded > s.discarded {
			s.cur.Lost = h.EventsDiscarded - s.discarded
			s.cur.Desc, s.cur.Payload = nil, nil
			s.cur.Timestamp = h.TimestampBegin
			s.cur.Wall = s.t.Clock.Wall(h.TimestampBegin)
		}
		s.discarded = h.EventsDiscarded
		return true
	}
	return false
}

func (s *stream) fail(err error) {
	s.ioErr = fmt.Errorf("read %s: %w", filepath.Join(s.t.Dir, s.name), err)
	s.eof = true
}

// resync moves pos to the next place after bad (the start of a packet that
// did not check) where the magic number and the trace's uuid appear (the
// start of a packet, most likely), or to the end of the file.
func (s *stream) resync(bad int64) {
	from := bad + 1
	var pat [20]byte
	binary.LittleEndian.PutUint32(pat[:], ctf.Magic)
	copy(pat[4:], s.t.UUID[:])
	const chunk = 64 << 10
	if cap(s.buf) < chunk {
		s.buf = make([]byte, chunk)
	}
	buf := s.buf[:chunk]
	for at := from; ; {
		n, err := s.f.ReadAt(buf, at)
		if i := bytes.Index(buf[:n], pat[:]); i >= 0 {
			s.t.errs.skipped += uint64(at + int64(i) - bad)
			s.pos = at + int64(i)
			return
		}
		if n < len(buf) {
			if err != nil && err != io.EOF {
				s.fail(err)
			}
			s.t.errs.skipped += uint64(at + int64(n) - bad)
			s.eof = true
			return
		}
		at += int64(n - len(pat) + 1) // the pattern may straddle chunks
	}
}

// wallParts splits c.Wall, OffsetS s + ns(Offset) + ns(v) with each term
// converted on its own (babeltrace2's way), into the constant part, c.Wall(0)
// (ns(0) is 0), and a clock with only c's rate, whose Wall(v) is ns(v):
// c.Wall(v) == base + ticks.Wall(v) in wrapping int64 arithmetic
// (TestWallParts holds it to ctf.Clock.Wall).
func wallParts(c ctf.Clock) (base int64, ticks ctf.Clock) {
	return c.Wall(0), ctf.Clock{Freq: c.Freq}
}
