package tracedir

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/usertrace/usertrace"
	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/ring"
)

type reqMethod uint8

func (reqMethod) TraceEnum() []usertrace.EnumLabel {
	return []usertrace.EnumLabel{{Value: 0, Label: "GET"}, {Value: 1, Label: "POST"}}
}

type where struct {
	X    int32
	Name string
}

type kinds struct {
	Method reqMethod
	Path   string
	Status uint16
	Took   time.Duration
	OK     bool
	Ratio  float64
	Raw    []byte
	At     time.Time
	Sizes  []int32
	Fixed  [2]uint8
	Where  where
	Neg    int64
}

type tick struct{}

var (
	kindsEvent = usertrace.NewEvent[kinds]("tdtest", "kinds")
	tickEvent  = usertrace.NewEvent[tick]("tdtest", "tick")
)

var lineRE = regexp.MustCompile(`^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{9})\] \((\+\?\.\?{9}|\+\d+\.\d{9})\) (\S+) (.*)$`)

// TestKinds records events of several kinds with the real writer and checks
// the exact text of each line.
func TestKinds(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "kinds-42")
	rec := newRecording(t, dir, "kinds", 42, ring.Config{NumShards: 1, NumSub: 4, SubSize: 4096})
	rec.attach(kindsEvent.Point())
	rec.attach(tickEvent.Point())
	before := time.Now()
	kindsEvent.Emit(kinds{Method: 1, Path: `/a"b`, Status: 404, Took: 1500 * time.Microsecond, OK: true, Ratio: 0.25,
		Raw: []byte{0, 255}, At: time.Date(2026, 1, 2, 3, 4, 5, 5e8, time.UTC), Sizes: []int32{1, -2}, Fixed: [2]uint8{7, 8},
		Where: where{X: -3, Name: "w"}, Neg: -9})
	tickEvent.Emit(tick{})
	kindsEvent.Emit(kinds{Method: 7, Path: "/", Took: 2*time.Hour + 3*time.Second, Ratio: -1e300, At: time.Unix(0, 0)})
	after := time.Now()
	rec.drain()

	var out bytes.Buffer
	st, err := WriteText(&out, TextOptions{Location: time.UTC}, dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`kinds/42 tdtest:kinds: method=POST(1), path="/a\"b", status=404, took=1.5ms, ok=true, ratio=0.25, raw=0x00ff, at=2026-01-02T03:04:05.5Z, sizes=[1, -2], fixed=[7, 8], where.x=-3, where.name="w", neg=-9`,
		`kinds/42 tdtest:tick`,
		`kinds/42 tdtest:kinds: method=7, path="/", status=0, took=2h0m3s, ok=false, ratio=-1e+300, raw=0x, at=1970-01-01T00:00:00Z, sizes=[], fixed=[0, 0], where.x=0, where.name="", neg=0`,
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != len(want) || st.Events != uint64(len(want)) || st.Corrupt != 0 || st.Lost != 0 {
		t.Fatalf("stats %+v, output:\n%s", st, out.String())
	}
	for i, l := range lines {
		m := lineRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("line %d does not have the form [date] (+delta) app/pid text: %q", i, l)
		}
		if i == 0 && m[2] != "+?.?????????" {
			t.Errorf("first delta %q", m[2])
		}
		ts, err := time.ParseInLocation("2006-01-02 15:04:05.000000000", m[1], time.UTC)
		if err != nil || ts.Before(before.Add(-time.Millisecond)) || ts.After(after.Add(time.Millisecond)) {
			t.Errorf("line %d: time %s outside the run [%s, %s] (%v)", i, m[1], before.UTC(), after.UTC(), err)
		}
		if got := m[3] + " " + m[4]; got != want[i] {
			t.Errorf("line %d:\n got %s\nwant %s", i, got, want[i])
		}
	}

	// The same through JSON, parsed back.
	out.Reset()
	if _, err := WriteJSON(&out, TextOptions{}, dir); err != nil {
		t.Fatal(err)
	}
	jl := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(jl) != 3 {
		t.Fatalf("json: %d lines:\n%s", len(jl), out.String())
	}
	wantJSON := `{"app":"kinds","event":"tdtest:kinds","fields":{"at":"2026-01-02T03:04:05.5Z","fixed":[7,8],"method":"POST","neg":-9,"ok":true,"path":"/a\"b","ratio":0.25,"raw":"0x00ff","sizes":[1,-2],"status":404,"took":1500000,"where":{"name":"w","x":-3}},"pid":42,"shard":0}`
	var obj map[string]any
	if err := json.Unmarshal([]byte(jl[0]), &obj); err != nil {
		t.Fatalf("json line %q: %v", jl[0], err)
	}
	ts := obj["ts"].(string)
	delete(obj, "ts")
	if b, _ := json.Marshal(obj); string(b) != wantJSON {
		t.Errorf("json:\n got %s\nwant %s", b, wantJSON)
	}
	if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || len(ts) != len("2026-11-25T13:31:02.123456789Z") {
		t.Errorf("json ts %q: %v", ts, err)
	}
	if !strings.Contains(jl[1], `"event":"tdtest:tick","fields":{}}`) {
		t.Errorf("json tick: %s", jl[1])
	}
}

// TestShards writes to two shards of one ring in a known interleaving: the
// merged output follows it exactly.
func TestShards(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "shards-7")
	rec := newRecording(t, dir, "shards", 7, ring.Config{NumShards: 3, NumSub: 8, SubSize: 4096})
	_, id := rec.register(threeDesc)
	const n = 3000 // about 25 packets
	var p []byte
	shardOf := func(i int) int { return (i*7 + i/5) % 3 }
	for i := range n {
		p = threePayload(p, uint64(i)*1e12, uint32(i))
		rec.write(shardOf(i), id, p)
		if i%500 == 499 {
			rec.drain()
		}
	}
	rec.drain()
	tr, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if s := tr.Shards(); len(s) != 3 || s[0] != 0 || s[2] != 2 {
		t.Fatalf("shards %v", s)
	}
	r := NewReader(tr)
	i := 0
	var last int64
	for r.Next() {
		e := r.Event()
		if e.Desc == nil {
			t.Fatalf("unexpected notice %+v", e)
		}
		b := binary.LittleEndian.Uint32(e.Payload[8:])
		if int(b) != i || e.Shard != shardOf(i) || e.Wall < last {
			t.Fatalf("event %d: b=%d shard %d (want %d), wall %d after %d", i, b, e.Shard, shardOf(i), e.Wall, last)
		}
		last = e.Wall
		i++
	}
	st := r.Stats()
	if r.Err() != nil || i != n || st.Events != n || st.Corrupt != 0 || st.Streams != 3 {
		t.Fatalf("read %d of %d, stats %+v, err %v", i, n, st, r.Err())
	}
	var out bytes.Buffer
	if _, err := WriteText(&out, TextOptions{Time: TimeRaw, NoDelta: true}, dir); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out.String(), "\n")
	if len(lines) != n+1 || !strings.HasSuffix(lines[1], `] shards/7 bench:three: a=1000000000000, b=1, s="0123456789abcdef"`) {
		t.Fatalf("%d lines; second %q", len(lines), lines[1])
	}
}

// spin waits until the wall clock has moved on by d, so that two rings'
// clock offsets (each measured to within a few tens of ns) cannot reorder
// events written d apart.
func spin(d time.Duration) {
	for t0 := time.Now(); time.Since(t0) < d; {
	}
}

// TestMergeTraces merges two traces (two apps' rings) found under one root.
func TestMergeTraces(t *testing.T) {
	root := t.TempDir()
	a := newRecording(t, filepath.Join(root, "alpha-1"), "alpha", 1, ring.Config{NumShards: 2, NumSub: 4, SubSize: 4096})
	b := newRecording(t, filepath.Join(root, "beta-2"), "beta", 2, ring.Config{NumShards: 1, NumSub: 4, SubSize: 4096})
	_, ida := a.register(threeDesc)
	_, idb := b.register(threeDesc)
	const n = 300
	var p []byte
	for i := range n {
		p = threePayload(p, 0, uint32(i))
		if i%3 == 0 {
			b.write(0, idb, p)
		} else {
			a.write(i%2, ida, p)
		}
		spin(2 * time.Microsecond)
	}
	a.drain()
	b.drain()
	dirs, err := Find(root)
	if err != nil || len(dirs) != 2 || filepath.Base(dirs[0]) != "alpha-1" {
		t.Fatalf("Find: %v %v", dirs, err)
	}
	var out bytes.Buffer
	st, err := WriteText(&out, TextOptions{NoDelta: true}, root)
	if err != nil || st.Traces != 2 || st.Streams != 3 {
		t.Fatalf("stats %+v, err %v", st, err)
	}
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("%d lines, want %d", len(lines), n)
	}
	for i, l := range lines {
		app := "alpha/1"
		if i%3 == 0 {
			app = "beta/2"
		}
		want := "] " + app + " bench:three: a=0, b=" + itoa(i) + `, s="0123456789abcdef"`
		if !strings.HasSuffix(l, want) {
			t.Fatalf("line %d: %q, want suffix %q", i, l, want)
		}
	}
	// A filter that keeps nothing, and one with a bad glob.
	out.Reset()
	if st, err := WriteText(&out, TextOptions{Events: []string{"http:*"}}, root); err != nil || out.Len() != 0 || st.Filtered != n {
		t.Fatalf("filter: %v, %+v, %q", err, st, out.String())
	}
	if _, err := WriteText(&out, TextOptions{Events: []string{"[x"}}, root); err == nil {
		t.Fatal("bad glob accepted")
	}
	if _, err := WriteText(&out, TextOptions{}, t.TempDir()); err == nil {
		t.Fatal("a directory without traces gave no error")
	}
}

// TestLost makes the writer discard events (discard mode, nothing drained)
// and checks the notice line.
func TestLost(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "lost-3")
	rec := newRecording(t, dir, "lost", 3, ring.Config{NumShards: 1, NumSub: 2, SubSize: 4096})
	_, id := rec.register(threeDesc)
	var p []byte
	wrote := 0
	for i := range 1000 {
		p = threePayload(p, 0, uint32(i))
		if rec.tr.Ring().Write(0, id, p) {
			wrote++
		}
	}
	lost := rec.tr.Lost()
	if lost == 0 {
		t.Fatal("nothing lost; the test needs a fuller ring")
	}
	rec.drain()
	for i := range 10 {
		rec.write(0, id, threePayload(p, 1, uint32(i)))
		wrote++
	}
	rec.drain()
	var out bytes.Buffer
	st, err := WriteText(&out, TextOptions{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Lost != lost || st.Events != uint64(wrote) {
		t.Fatalf("stats %+v; writer lost %d, wrote %d", st, lost, wrote)
	}
	notice := regexp.MustCompile(`(?m)^\[[-0-9 :.]+\] lost/3 \(` + itoa(int(lost)) + ` events lost in shard 0\)\n\[.*b=0, s=`)
	if !notice.MatchString(out.String()) {
		t.Fatalf("no notice of %d lost events before the next packet:\n%s", lost, tail(out.String(), 5))
	}
	out.Reset()
	WriteJSON(&out, TextOptions{}, dir)
	if !strings.Contains(out.String(), `"app":"lost","pid":3,"shard":0,"lost":`+itoa(int(lost))+"}\n") {
		t.Fatalf("json notice missing")
	}
}

func tail(s string, n int) string {
	l := strings.Split(s, "\n")
	return strings.Join(l[max(0, len(l)-n):], "\n")
}

// corruptTrace records n bench events on one shard in 4 KiB packets.
func corruptTrace(t testing.TB, n int) (string, *recording) {
	dir := filepath.Join(t.TempDir(), "bad-9")
	rec := newRecording(t, dir, "bad", 9, ring.Config{NumShards: 1, NumSub: 32, SubSize: 4096})
	_, id := rec.register(threeDesc)
	var p []byte
	for i := range n {
		rec.write(0, id, threePayload(p, 0, uint32(i)))
		if i%1000 == 999 {
			rec.drain()
		}
	}
	rec.drain()
	return dir, rec
}

func countText(t *testing.T, dir string) (int, Stats) {
	t.Helper()
	var out bytes.Buffer
	st, err := WriteText(&out, TextOptions{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if uint64(strings.Count(out.String(), "\n")) != st.Events+uint64(strings.Count(out.String(), " events lost in shard ")) {
		t.Fatalf("line count does not match stats %+v", st)
	}
	return int(st.Events), st
}

// TestCorrupt damages stream files in several ways: each damaged packet is
// counted with an error naming the file and byte, the rest is read.
func TestCorrupt(t *testing.T) {
	const n = 1000 // 33 bytes each in 4 KiB packets: 8 packets
	const perPacket = (4096 - ctf.PacketHeaderSize) / 33
	dir, rec := corruptTrace(t, n)
	file := rec.streamPath(0)
	orig, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got, st := countText(t, dir); got != n || st.Packets != uint64(len(orig)/4096) {
		t.Fatalf("clean trace: %d events, stats %+v", got, st)
	}
	damage := func(name string, f func(b []byte) []byte, wantEvents int, wantErr string) {
		t.Run(name, func(t *testing.T) {
			b := f(append([]byte(nil), orig...))
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			got, st := countText(t, dir)
			if got != wantEvents || st.Corrupt != 1 || len(st.Errors) != 1 {
				t.Fatalf("%d events (want %d), stats %+v", got, wantEvents, st)
			}
			if e := st.Errors[0].Error(); !strings.Contains(e, wantErr) || !strings.Contains(e, "stream_0: packet at byte") || !errors.Is(st.Errors[0], ctf.ErrCorrupt) {
				t.Fatalf("error %q, want it to name the file and say %q", e, wantErr)
			}
			t.Logf("%s: %v", name, st.Errors[0])
		})
	}
	damage("magic", func(b []byte) []byte { b[2*4096] ^= 0xff; return b }, n-perPacket, "no packet header of this trace")
	damage("packet_size", func(b []byte) []byte { b[4096+ctf.OffPacketSize+3] = 0x7f; return b }, n-perPacket, "packet_size")
	damage("content_size", func(b []byte) []byte { b[4096+ctf.OffContentSize+2] = 0x7f; return b }, n-perPacket, "content_size")
	damage("event id", func(b []byte) []byte { b[3*4096+ctf.PacketHeaderSize+10*33] = 9; return b }, n-perPacket+10, "unknown event id 9")
	damage("truncated", func(b []byte) []byte { return b[:len(b)-100] }, n-(n%perPacket), "file ends")
	damage("garbage between packets", func(b []byte) []byte {
		return append(b[:4096:4096], append(bytes.Repeat([]byte{0xC1}, 777), b[4096:]...)...)
	}, n, "no packet header")

	// Random damage: never a panic, always the end.
	if err := os.WriteFile(file, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	seed := uint64(1)
	for range 200 {
		b := append([]byte(nil), orig...)
		for range 1 + seed%8 {
			seed = seed*6364136223846793005 + 1442695040888963407
			b[seed>>33%uint64(len(b))] = byte(seed >> 20)
		}
		os.WriteFile(file, b, 0o644)
		WriteText(io.Discard, TextOptions{}, dir)
		WriteJSON(io.Discard, TextOptions{}, dir)
	}
}

// TestOpenErrors: a corrupt sidecar is an error of Open, never a panic.
func TestOpenErrors(t *testing.T) {
	dir, _ := corruptTrace(t, 10)
	cat := filepath.Join(dir, SidecarDir, CatalogFile)
	info := filepath.Join(dir, SidecarDir, InfoFile)
	cb, _ := os.ReadFile(cat)
	ib, _ := os.ReadFile(info)
	for _, c := range []struct {
		name, path string
		data       []byte
		want       string
	}{
		{"catalog cut", cat, cb[:len(cb)-3], "sidecar catalog"},
		{"catalog magic", cat, append([]byte("XXXX"), cb[4:]...), "magic"},
		{"info not json", info, []byte("{"), "trace.json"},
		{"info bad uuid", info, []byte(`{"uuid":"nope"}`), "uuid"},
	} {
		os.WriteFile(c.path, c.data, 0o644)
		_, err := Open(dir)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want an error saying %q", c.name, err, c.want)
		}
		os.WriteFile(cat, cb, 0o644)
		os.WriteFile(info, ib, 0o644)
	}
	os.Remove(info)
	if _, err := Open(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing trace.json: %v", err)
	}
}

// TestTimeFormats checks the timestamp and delta text with fixed times.
func TestTimeFormats(t *testing.T) {
	tr := &Trace{label: []byte("app/1")}
	desc := &catalog.Event{Provider: "p", Name: "e"}
	wall := time.Date(2026, 11, 25, 13, 31, 2, 123456789, time.UTC).UnixNano()
	for _, c := range []struct {
		opts TextOptions
		want string
	}{
		{TextOptions{Location: time.UTC}, "[2026-11-25 13:31:02.123456789] (+?.?????????) app/1 p:e\n[2026-11-25 13:31:03.000000000] (+0.876543211) app/1 p:e\n"},
		{TextOptions{Location: time.FixedZone("X", 3600), Time: TimeClock, NoDelta: true}, "[14:31:02.123456789] app/1 p:e\n[14:31:03.000000000] app/1 p:e\n"},
		{TextOptions{Time: TimeUnix, NoDelta: true}, "[1795613462.123456789] app/1 p:e\n[1795613463.000000000] app/1 p:e\n"},
		{TextOptions{Time: TimeRaw, NoDelta: true}, "[5] app/1 p:e\n[876543216] app/1 p:e\n"},
	} {
		var out bytes.Buffer
		tw := newTextWriter(&out, c.opts)
		tw.event(&Event{Trace: tr, Desc: desc, Wall: wall, Timestamp: 5})
		tw.event(&Event{Trace: tr, Desc: desc, Wall: wall + 876543211, Timestamp: 876543216})
		tw.flush()
		if out.String() != c.want {
			t.Errorf("%+v:\n got %q\nwant %q", c.opts, out.String(), c.want)
		}
	}
}

// TestZeroAllocs: reading and formatting allocate nothing per event once
// warm (a constant few for the reader, the plans and the packet buffer).
func TestZeroAllocs(t *testing.T) {
	dir, _ := corruptTrace(t, 5000)
	tr, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	allocs := testing.AllocsPerRun(3, func() {
		for _, s := range tr.streams {
			*s = *newStream(tr, s.f, s.name, s.shard)
		}
		r := NewReader(tr)
		tw := newTextWriter(io.Discard, TextOptions{})
		for r.Next() {
			tw.event(r.Event())
		}
		tw.flush()
	})
	if allocs > 60 {
		t.Fatalf("%v allocations for 5000 events", allocs)
	}
}
