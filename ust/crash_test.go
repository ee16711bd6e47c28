package ust

import (
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/internal/memfd"
	"github.com/usertrace/usertrace/internal/noescape"
	"github.com/usertrace/usertrace/ring"
	"github.com/usertrace/usertrace/tracer"
)

// The crash test's event: writer, sequence number, and a check word that a
// torn record would get wrong.
var crashDesc = catalog.Event{Provider: "test", Name: "crash", Fields: []catalog.Field{
	{Name: "writer", Type: catalog.Type{Kind: catalog.Uint32}},
	{Name: "seq", Type: catalog.Type{Kind: catalog.Uint64}},
	{Name: "check", Type: catalog.Type{Kind: catalog.Uint64}},
	{Name: "pad", Type: catalog.Type{Kind: catalog.String}},
}}

func crashCheck(w uint32, seq uint64) uint64 { return (seq*0x9E3779B97F4A7C15 ^ uint64(w)) + 1 }

const (
	crashEnv     = "USERTRACE_UST_CRASH_CHILD"
	crashWriters = 2
	crashBurst   = 5000
	crashPad     = "padding to make records of uneven length"
)

// crashChild is the writer process: it makes a tracer, sends the ring memfd
// and a progress page to the parent, and writes until it is killed. After
// each record, the progress page gets the number of records the writer has
// committed, so the parent knows what must be recovered.
func crashChild(path string) {
	fail := func(err error) { fmt.Fprintln(os.Stderr, "crash child:", err); os.Exit(3) }
	runtime.GOMAXPROCS(crashWriters)
	tr, err := New(Config{Ring: ring.Config{NumShards: crashWriters, NumSub: 8, SubSize: 64 << 10}})
	if err != nil {
		fail(err)
	}
	p, err := tracer.Register(crashDesc)
	if err != nil {
		fail(err)
	}
	if _, err := tr.Attach(p); err != nil {
		fail(err)
	}
	prog, err := memfd.Create("progress", 4096)
	if err != nil {
		fail(err)
	}
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		fail(err)
	}
	if err := memfd.SendFile(c, tr.Ring().File(), []byte("ring")); err != nil {
		fail(err)
	}
	if err := memfd.SendFile(c, prog.File(), []byte("progress")); err != nil {
		fail(err)
	}
	for w := range crashWriters {
		go func() {
			done := (*atomic.Uint64)(unsafe.Pointer(&prog.Bytes()[64*w]))
			var b [128]byte
			for seq := uint64(0); ; seq++ {
				binary.LittleEndian.PutUint32(b[0:], uint32(w))
				binary.LittleEndian.PutUint64(b[4:], seq)
				binary.LittleEndian.PutUint64(b[12:], crashCheck(uint32(w), seq))
				n := 20 + copy(b[20:], crashPad[:seq%uint64(len(crashPad))])
				b[n] = 0
				p.Dispatch(noescape.Bytes(b[:n+1]))
				done.Store(seq + 1)
				if seq%crashBurst == crashBurst-1 {
					time.Sleep(200 * time.Microsecond) // between bursts
				}
			}
		}()
	}
	select {}
}

// TestCrashRecovery kills a real writer process with SIGKILL in the middle
// of its bursts and checks that the reader recovers every record the child
// committed, in order, and no torn one.
func TestCrashRecovery(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a child process")
	}
	for round := range 5 {
		t.Run(fmt.Sprint(round), func(t *testing.T) { crashRound(t, time.Duration(20+25*round)*time.Millisecond) })
	}
}

func crashRound(t *testing.T, runFor time.Duration) {
	path := filepath.Join(t.TempDir(), "sock")
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	}()
	c, err := l.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	rf, _, err := memfd.RecvFile(c, 64)
	if err != nil {
		t.Fatal(err)
	}
	pf, _, err := memfd.RecvFile(c, 64)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ring.Open(rf)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	prog, err := memfd.Open(pf, 4096, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()

	// A goroutine may move between Ps, so its records spread over the
	// shards: collect them as sets and check each writer's set is exactly
	// 0..n-1.
	events := []*catalog.Event{&crashDesc}
	seen := make([]map[uint64]bool, crashWriters)
	for w := range seen {
		seen[w] = make(map[uint64]bool)
	}
	check := func(pkt []byte) {
		t.Helper()
		err := ctf.Events(pkt, events, func(e ctf.Event) bool {
			w := binary.LittleEndian.Uint32(e.Payload)
			seq := binary.LittleEndian.Uint64(e.Payload[4:])
			if w >= crashWriters || binary.LittleEndian.Uint64(e.Payload[12:]) != crashCheck(w, seq) ||
				len(e.Payload) != 21+int(seq%uint64(len(crashPad))) {
				t.Fatalf("torn record at offset %d: %x", e.Offset, e.Payload)
			}
			if seen[w][seq] {
				t.Fatalf("writer %d seq %d read twice", w, seq)
			}
			seen[w][seq] = true
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Drain while the child writes, then kill it mid-burst.
	deadline := time.Now().Add(runFor)
	var buf []byte
	for time.Now().Before(deadline) {
		_, pkt, err := r.Next(buf)
		if err == ring.ErrEmpty {
			time.Sleep(100 * time.Microsecond)
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		buf = pkt
		check(pkt)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	killed = true

	dropped, err := r.Recover(func(_ int, pkt []byte) error { check(pkt); return nil })
	if err != nil || dropped != 0 {
		t.Fatalf("Recover: dropped %d, %v", dropped, err)
	}
	// Every record the child finished writing was either committed, and
	// then recovered, or dropped and counted (the reader may fall behind,
	// under -race): recovered + lost = attempted, up to one in-flight
	// record per writer that completed but was not yet counted.
	var lost, recovered, attempted uint64
	for w := range crashWriters {
		lost += r.Lost(w)
		recovered += uint64(len(seen[w]))
		attempted += (*atomic.Uint64)(unsafe.Pointer(&prog.Bytes()[64*w])).Load()
	}
	if recovered+lost < attempted || recovered+lost > attempted+crashWriters {
		t.Errorf("recovered %d + lost %d records, the child attempted %d", recovered, lost, attempted)
	}
	t.Logf("recovered %d + lost %d records, the child attempted %d (killed mid-burst: %v)", recovered, lost, attempted, attempted%crashBurst != 0)
}
