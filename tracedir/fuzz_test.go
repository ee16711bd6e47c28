package tracedir

import (
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/ring"
)

var fuzzUUID = [16]byte{0xf0, 0x22, 0x33, 0x44, 0x55, 0x66, 0x40, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff}

var (
	fuzzOnce sync.Once
	fuzzSeed []byte // a clean stream file: bench and all-kinds events
	fuzzSide [2][]byte
)

// fuzzTrace records a small trace with the bench event and an event of
// every kind, and keeps its stream file and sidecar as the fuzz seed.
func fuzzTrace(tb testing.TB) {
	fuzzOnce.Do(func() {
		dir := filepath.Join(tb.TempDir(), "fuzz-1")
		rec := newRecording(tb, dir, "fuzz", 1, ring.Config{NumShards: 1, NumSub: 4, SubSize: 4096})
		_, three := rec.register(threeDesc)
		_, all := rec.register(*allKinds)
		var p []byte
		for i := range 150 {
			rec.write(0, three, threePayload(p, uint64(i), uint32(i)))
			if i%50 == 0 {
				rec.write(0, all, allValuesPayload(i))
			}
		}
		rec.drain()
		var err error
		if fuzzSeed, err = os.ReadFile(rec.streamPath(0)); err != nil {
			tb.Fatal(err)
		}
		// A fixed uuid, so that the seed corpus in testdata matches the
		// sidecar of every run.
		for off := 0; off+ctf.PacketHeaderSize <= len(fuzzSeed); off += 4096 {
			copy(fuzzSeed[off+ctf.OffUUID:], fuzzUUID[:])
		}
		fuzzSide[0], _ = os.ReadFile(filepath.Join(dir, SidecarDir, CatalogFile))
		fuzzSide[1], _ = json.Marshal(Info{UUID: ctf.FormatUUID(fuzzUUID), ClockOffset: 1e18, App: "fuzz", PID: 1, Shards: 1})
	})
}

func allValuesPayload(i int) []byte {
	var b []byte
	b = catalog.AppendBool(b, i%2 == 0)
	b = catalog.AppendInt8(b, int8(-i))
	b = catalog.AppendInt16(b, int16(-i*100))
	b = catalog.AppendInt32(b, int32(-i*1e6))
	b = catalog.AppendInt64(b, int64(-i)*1e15)
	b = catalog.AppendUint8(b, uint8(i))
	b = catalog.AppendUint16(b, uint16(i))
	b = catalog.AppendUint32(b, uint32(i))
	b = catalog.AppendUint64(b, uint64(i)<<40)
	b = catalog.AppendFloat32(b, float32(i)/3)
	b = catalog.AppendFloat64(b, float64(i)/7)
	b = catalog.AppendString(b, `s"\`+strings.Repeat("x", i%5))
	b = catalog.AppendBytes(b, []byte{byte(i), 0xff})
	b = catalog.AppendInt64(b, int64(i)*1e6)  // took
	b = catalog.AppendInt64(b, int64(i)*1e18) // at
	b = catalog.AppendUint8(b, uint8(i%3))    // color
	b = catalog.AppendInt16(b, -1)            // delta
	for range 3 {
		b = catalog.AppendInt16(b, int16(i))
	}
	b = catalog.AppendUint32(b, 2)
	b = catalog.AppendFloat32(b, 1.5)
	b = catalog.AppendFloat32(b, -0.25)
	b = catalog.AppendUint32(b, 1)
	b = catalog.AppendBool(b, true)
	b = catalog.AppendInt8(b, -2)
	b = catalog.AppendInt8(b, 3)
	b = catalog.AppendInt32(b, int32(i))
	b = catalog.AppendString(b, "pt")
	b = catalog.AppendBool(b, false)
	return catalog.AppendUint8(b, 9)
}

// FuzzStream reads arbitrary bytes as a stream file of a trace whose
// sidecar describes the bench and all-kinds events: the text and JSON
// writers must never panic, always end, and write one line per item; each
// event's text must equal catalog's AppendText.
func FuzzStream(f *testing.F) {
	fuzzTrace(f)
	f.Add(fuzzSeed)
	f.Add(fuzzSeed[:len(fuzzSeed)/2])
	f.Add(fuzzSeed[:ctf.PacketHeaderSize+10])
	f.Add([]byte{})
	dir := filepath.Join(f.TempDir(), "fuzz-1")
	if err := os.MkdirAll(filepath.Join(dir, SidecarDir), 0o755); err != nil {
		f.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "metadata"), []byte("/* CTF 1.8 */"), 0o644)
	os.WriteFile(filepath.Join(dir, SidecarDir, CatalogFile), fuzzSide[0], 0o644)
	os.WriteFile(filepath.Join(dir, SidecarDir, InfoFile), fuzzSide[1], 0o644)
	stream := filepath.Join(dir, "stream_0")
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(stream, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tr, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Close()
		r := NewReader(tr)
		n := 0
		for r.Next() {
			e := r.Event()
			if e.Desc != nil {
				checkPlan(t, e.Desc, e.Payload)
			}
			if n++; n > len(data) {
				t.Fatalf("more items (%d) than bytes", n)
			}
		}
		st := r.Stats()
		if uint64(len(st.Errors)) > st.Corrupt || (st.Corrupt > 0 && len(st.Errors) == 0) {
			t.Fatalf("stats %+v", st)
		}
		var out strings.Builder
		st, err = WriteText(&out, TextOptions{}, dir)
		if err != nil {
			t.Fatal(err)
		}
		if lines := strings.Count(out.String(), "\n"); lines != n {
			t.Fatalf("%d lines for %d items", lines, n)
		}
		if _, err := WriteJSON(io.Discard, TextOptions{}, dir); err != nil {
			t.Fatal(err)
		}
	})
}
