package ust

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
	"github.com/usertrace/usertrace/internal/memfd"
	"github.com/usertrace/usertrace/internal/sched"
	"github.com/usertrace/usertrace/ring"
)

const drainEnv = "USERTRACE_UST_DRAIN_CHILD"

// drainChild is the consumer process of BenchmarkDrain: it receives the
// ring's memfd, copies every complete packet to a stream file, and when the
// parent says "done" drains what is left and reports.
func drainChild(spec string) {
	fail := func(err error) { fmt.Fprintln(os.Stderr, "drain child:", err); os.Exit(3) }
	var sock, out string
	if _, err := fmt.Sscanf(spec, "%s %s", &sock, &out); err != nil {
		fail(err)
	}
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		fail(err)
	}
	f, _, err := memfd.RecvFile(c, 64)
	if err != nil {
		fail(err)
	}
	r, err := ring.Open(f)
	if err != nil {
		fail(err)
	}
	d, err := os.Create(out)
	if err != nil {
		fail(err)
	}
	// The consumer drains as the daemon does (daemon/stream.go): from a
	// real-time thread that sleeps in the kernel between looks, every
	// 500 µs. USERTRACE_DRAIN_NORMAL=1 drains at normal priority with Go
	// timers instead, to show what that loses.
	poll := 500 * time.Microsecond
	if d, err := time.ParseDuration(os.Getenv("USERTRACE_DRAIN_POLL")); err == nil {
		poll = d
	}
	sleep := time.Sleep
	realtime := 0
	if os.Getenv("USERTRACE_DRAIN_NORMAL") == "" {
		rt, err := sched.LockRealtime()
		if err != nil {
			fmt.Fprintln(os.Stderr, "drain child: draining at normal priority:", err)
		} else {
			defer rt.Unlock()
			sleep, realtime = sched.Sleep, 1
		}
	}
	var done atomic.Bool
	go func() {
		var b [16]byte
		c.Read(b[:])
		done.Store(true)
	}()
	c.Write([]byte("ready"))
	var packets, bytes int
	for {
		finishing := done.Load() // read before Next: then an empty ring is really empty
		_, m, err := r.WriteNext(d)
		if err == ring.ErrEmpty {
			if finishing {
				break
			}
			sleep(poll)
			continue
		}
		if err != nil {
			fail(err)
		}
		packets++
		bytes += m
	}
	if err := d.Close(); err != nil {
		fail(err)
	}
	if os.Getenv("USERTRACE_DRAIN_VERBOSE") != "" {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		fmt.Fprintf(os.Stderr, "consumer: %d packets, user %v sys %v, %d involuntary switches\n", packets,
			time.Duration(ru.Utime.Nano()), time.Duration(ru.Stime.Nano()), ru.Nivcsw)
	}
	fmt.Fprintf(c, "%d %d %d", packets, bytes, realtime)
	os.Exit(0)
}

// BenchmarkDrain: two writers emit the 3-field event at full speed into a
// ring with the default geometry while a consumer in another process copies
// full packets to a file. b.N is the number of events. Reported: events/s
// that reached the file (wall clock, from the first event to the last packet
// written), events lost, and bytes per event on disk.
func BenchmarkDrain(b *testing.B) {
	tr := newTracer(b, Config{})
	if _, err := tr.Attach(benchPoint); err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	sock := filepath.Join(dir, "sock")
	// The stream file goes to tmpfs by default: on this VM, ext4 writeback
	// of ~700 MB/s runs in kworker threads that take a whole CPU from the
	// writers and the consumer and make the figure measure the disk.
	// USERTRACE_DRAIN_DIR picks another directory (a disk).
	outDir := os.Getenv("USERTRACE_DRAIN_DIR")
	if outDir == "" {
		if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
			outDir = "/dev/shm"
		} else {
			outDir = dir
		}
	}
	outFile, err := os.CreateTemp(outDir, "usertrace-drain-*")
	if err != nil {
		b.Fatal(err)
	}
	out := outFile.Name()
	outFile.Close()
	defer os.Remove(out)
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: sock, Net: "unixpacket"})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), drainEnv+"="+sock+" "+out)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer cmd.Wait()
	c, err := l.AcceptUnix()
	if err != nil {
		cmd.Process.Kill()
		b.Fatal(err)
	}
	defer c.Close()
	if err := memfd.SendFile(c, tr.Ring().File(), []byte("ring")); err != nil {
		b.Fatal(err)
	}
	var msg [64]byte
	if n, err := c.Read(msg[:]); err != nil || string(msg[:n]) != "ready" {
		b.Fatalf("consumer: %q, %v", msg[:n], err)
	}
	lost0 := tr.Lost()
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for k := range 2 {
		n := b.N / 2
		if k == 0 {
			n = b.N - n
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				emit(uint64(i), uint32(i), benchString)
			}
		}()
	}
	wg.Wait()
	tr.Flush()
	c.Write([]byte("done"))
	n, err := c.Read(msg[:])
	elapsed := time.Since(start)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	var packets, bytes, realtime int
	fmt.Sscanf(string(msg[:n]), "%d %d %d", &packets, &bytes, &realtime)
	lost := tr.Lost() - lost0
	// Count the events that reached the file.
	data, err := os.ReadFile(out)
	if err != nil {
		b.Fatal(err)
	}
	events := 0
	for off := 0; off < len(data); {
		h, err := ctf.ParsePacketHeader(data[off:min(len(data), off+ring.DefaultSubSize)])
		if err != nil {
			b.Fatal(err)
		}
		end := off + int(h.PacketSize/8)
		ctf.Events(data[off:end], []*catalog.Event{&benchDesc}, func(ctf.Event) bool { events++; return true })
		off = end
	}
	if uint64(events)+lost != uint64(b.N) {
		b.Errorf("%d events on disk + %d lost != %d emitted", events, lost, b.N)
	}
	b.ReportMetric(float64(events)/elapsed.Seconds(), "events/s")
	b.ReportMetric(float64(lost), "lost")
	b.ReportMetric(float64(realtime), "realtime")
	b.ReportMetric(float64(lost)/float64(b.N)*100, "%lost")
	if events > 0 {
		b.ReportMetric(float64(len(data))/float64(events), "B/event")
	}
}
