// Package e2e holds the end-to-end tests: real programs (internal/testapp),
// a real daemon process (cmd/usertraced), the real CLI (cmd/usertrace), and
// Debian's babeltrace2 reading the traces they produce.
package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/protocol"
)

var bins struct {
	once                          sync.Once
	dir                           string
	err                           error
	usertrace, usertraced, testap string
}

// build compiles the three programs once per test run.
func build(t *testing.T) {
	t.Helper()
	bins.once.Do(func() {
		bins.dir, bins.err = os.MkdirTemp("", "usertrace-e2e-bin-")
		if bins.err != nil {
			return
		}
		gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
		for _, p := range []struct {
			out *string
			pkg string
		}{
			{&bins.usertrace, "../cmd/usertrace"},
			{&bins.usertraced, "../cmd/usertraced"},
			{&bins.testap, "../internal/testapp"},
		} {
			*p.out = filepath.Join(bins.dir, filepath.Base(p.pkg))
			out, err := exec.Command(gobin, "build", "-o", *p.out, p.pkg).CombinedOutput()
			if err != nil {
				bins.err = fmt.Errorf("go build %s: %v\n%s", p.pkg, err, out)
				return
			}
		}
	})
	if bins.err != nil {
		t.Fatal(bins.err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if bins.dir != "" {
		os.RemoveAll(bins.dir)
	}
	os.Exit(code)
}

func needBabeltrace(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("babeltrace2"); err != nil {
		t.Skip("babeltrace2 is not installed (Debian package babeltrace2; .ci/run installs it)")
	}
}

// btEvent is one line of babeltrace2's text output.
type btEvent struct {
	ts      time.Time
	name    string
	payload string // the event payload struct, "{ ... }"
}

// btLine: [1732541234.123456789] (+0.000000123) host proc testapp:seq: { cpu_id = 0 }, { goroutine = 0, ... }
var btLine = regexp.MustCompile(`^\[(\d+)\.(\d{9})\] \(\+[^)]*\) .*? ([a-z_]+:[a-z_]+): \{ cpu_id = \d+ \}, (\{.*\})$`)

// babeltrace runs babeltrace2 on dir and parses every event line. It fails
// the test if babeltrace2 reports any error.
func babeltrace(t *testing.T, dir string) []btEvent {
	t.Helper()
	cmd := exec.Command("babeltrace2", "--clock-seconds", dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("babeltrace2 %s: %v\n%s", dir, err, tail(stderr.String(), 3000))
	}
	if s := stderr.String(); strings.Contains(s, " E ") || strings.Contains(s, "ERROR") {
		t.Fatalf("babeltrace2 reported errors:\n%s", tail(s, 3000))
	}
	var evs []btEvent
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		m := btLine.FindStringSubmatch(sc.Text())
		if m == nil {
			t.Fatalf("babeltrace2 line not understood: %q", sc.Text())
		}
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		ns, _ := strconv.ParseInt(m[2], 10, 64)
		evs = append(evs, btEvent{ts: time.Unix(sec, ns), name: m[3], payload: m[4]})
	}
	return evs
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// seqPayload is how babeltrace2 prints testapp's Seq event for goroutine g
// and sequence number n (see internal/testapp.Value). babeltrace2 prints
// doubles like C's %g: six significant digits.
func seqPayload(g, n uint64) string {
	colors := []string{"RED", "GREEN", "BLUE"}
	odd := map[bool]string{false: `( "false" : container = 0 )`, true: `( "true" : container = 1 )`}[n%2 == 1]
	return fmt.Sprintf(`{ goroutine = %d, seq = %d, text = "msg-%d-%d", half = %s, odd = %s, color = ( "%s" : container = %d ), triple = [ [0] = %d, [1] = %d, [2] = %d ], took = %d, neg = %d }`,
		g, n, g, n, strconv.FormatFloat(float64(n)/2, 'g', 6, 64), odd, colors[n%3], n%3,
		uint16(n), uint16(n+1), uint16(n+2), n*1000, -int64(n%1000))
}

var seqField = regexp.MustCompile(`^\{ goroutine = (\d+), seq = (\d+),`)

// checkSeqs checks every testapp:seq event's payload exactly, and returns,
// per goroutine, the sequence numbers in trace order.
func checkSeqs(t *testing.T, evs []btEvent) map[uint64][]uint64 {
	t.Helper()
	seqs := map[uint64][]uint64{}
	for _, e := range evs {
		if e.name != "testapp:seq" {
			continue
		}
		m := seqField.FindStringSubmatch(e.payload)
		if m == nil {
			t.Fatalf("seq event without goroutine/seq: %s", e.payload)
		}
		g, _ := strconv.ParseUint(m[1], 10, 64)
		n, _ := strconv.ParseUint(m[2], 10, 64)
		if want := seqPayload(g, n); e.payload != want {
			t.Fatalf("event payload differs\n got %s\nwant %s", e.payload, want)
		}
		seqs[g] = append(seqs[g], n)
	}
	return seqs
}

// checkComplete: goroutine g's events are exactly 0..n-1, in order.
func checkComplete(t *testing.T, seqs map[uint64][]uint64, goroutines int, n uint64) {
	t.Helper()
	if len(seqs) != goroutines {
		t.Fatalf("events from %d goroutines, want %d", len(seqs), goroutines)
	}
	for g, s := range seqs {
		if uint64(len(s)) != n {
			t.Errorf("goroutine %d: %d events, want %d", g, len(s), n)
		}
		for i, v := range s {
			if v != uint64(i) {
				t.Fatalf("goroutine %d: event %d has seq %d: lost, duplicated or out of order", g, i, v)
			}
		}
	}
}

// TestRecord: `usertrace record` on a program with several event types;
// babeltrace2 finds every event with its exact field values, in order, with
// timestamps inside the run.
func TestRecord(t *testing.T) {
	needBabeltrace(t)
	build(t)
	out := filepath.Join(t.TempDir(), "trace")
	const n, goroutines = 20000, 2
	before := time.Now()
	cmd := exec.Command(bins.usertrace, "record", "-o", out, "--", bins.testap, "-n", fmt.Sprint(n), "-goroutines", fmt.Sprint(goroutines))
	stderr, err := cmd.CombinedOutput()
	after := time.Now()
	if err != nil {
		t.Fatalf("record: %v\n%s", err, stderr)
	}
	if !regexp.MustCompile(fmt.Sprintf(`usertrace: %d events .*, 0 lost\) from 1 program`, n*goroutines+goroutines*n/10)).Match(stderr) {
		t.Errorf("summary does not report every event:\n%s", stderr)
	}
	evs := babeltrace(t, out)
	checkComplete(t, checkSeqs(t, evs), goroutines, n)
	ticks := 0
	for _, e := range evs {
		if e.ts.Before(before) || e.ts.After(after) {
			t.Fatalf("event at %v outside the run [%v, %v]", e.ts, before, after)
		}
		if e.name == "testapp:tick" {
			ticks++
		}
	}
	if ticks != goroutines*n/10 {
		t.Errorf("%d tick events, want %d", ticks, goroutines*n/10)
	}
}

// TestRecordExitStatus: record exits with its command's status.
func TestRecordExitStatus(t *testing.T) {
	build(t)
	cmd := exec.Command(bins.usertrace, "record", "-q", "-o", filepath.Join(t.TempDir(), "t"), "--", "sh", "-c", "exit 7")
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Fatalf("record of `exit 7` returned %v", err)
	}
}

// daemonProc is a real usertraced process.
type daemonProc struct {
	t   *testing.T
	dir string
	cmd *exec.Cmd
	log *syncBuffer
}

// syncBuffer is a bytes.Buffer that a process's output can be copied into
// while a test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startDaemon(t *testing.T, dir string, flags ...string) *daemonProc {
	t.Helper()
	d := &daemonProc{t: t, dir: dir, log: &syncBuffer{}}
	d.cmd = exec.Command(bins.usertraced, append([]string{"-d", dir, "-v"}, flags...)...)
	d.cmd.Stderr = d.log
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.cmd.Process.Kill(); d.cmd.Wait() })
	// A killed daemon leaves its sockets behind: wait until this one answers.
	waitFor(t, 5*time.Second, "daemon to answer", func() bool {
		return exec.Command(bins.usertrace, "-d", dir, "status").Run() == nil
	})
	return d
}

// cli runs the usertrace CLI against the daemon in dir.
func cli(t *testing.T, dir string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bins.usertrace, append([]string{"-d", dir}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("usertrace %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

type statusJSON struct {
	Sessions []protocol.SessionStatus `json:"sessions"`
	Apps     []protocol.AppStatus     `json:"apps"`
}

func status(t *testing.T, dir string) statusJSON {
	t.Helper()
	var s statusJSON
	if err := json.Unmarshal([]byte(cli(t, dir, "status", "--json")), &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func waitFor(t *testing.T, timeout time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitTracing waits until n apps are connected and each traces a session.
func waitTracing(t *testing.T, dir string, n int) {
	t.Helper()
	waitFor(t, 10*time.Second, fmt.Sprintf("%d apps tracing", n), func() bool {
		s := status(t, dir)
		k := 0
		for _, a := range s.Apps {
			if a.Sessions > 0 {
				k++
			}
		}
		return k >= n
	})
}

func startApp(t *testing.T, dir string, args ...string) (*exec.Cmd, *bufio.Scanner) {
	t.Helper()
	cmd := exec.Command(bins.testap, args...)
	cmd.Env = append(os.Environ(), "USERTRACE_DAEMONS="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, bufio.NewScanner(stdout)
}

// TestDaemonTwoApps: a standing daemon process driven by the CLI, one app
// started before the daemon and one after.
func TestDaemonTwoApps(t *testing.T) {
	needBabeltrace(t)
	build(t)
	dir := filepath.Join(t.TempDir(), "d") // does not exist yet
	tmp := t.TempDir()
	goFile := filepath.Join(tmp, "go")
	const n = 5000
	early, _ := startApp(t, dir, "-n", fmt.Sprint(n), "-go", goFile)
	time.Sleep(100 * time.Millisecond) // early is up and watching for the daemon

	startDaemon(t, dir)
	out := filepath.Join(tmp, "trace")
	cli(t, dir, "create", "-o", out, "s1")
	cli(t, dir, "enable", "-s", "s1", "testapp:*")
	cli(t, dir, "start", "-s", "s1")
	late, _ := startApp(t, dir, "-n", fmt.Sprint(n), "-go", goFile)
	waitTracing(t, dir, 2)
	os.WriteFile(goFile, nil, 0o644)
	for _, c := range []*exec.Cmd{early, late} {
		if err := c.Wait(); err != nil {
			t.Fatalf("app: %v", err)
		}
	}
	stop := cli(t, dir, "stop", "-s", "s1")
	if !strings.Contains(stop, fmt.Sprintf("%d events", 2*(n+n/10))) || !strings.Contains(stop, "0 lost, from 2 apps") {
		t.Errorf("stop summary: %s", stop)
	}
	traces, _ := filepath.Glob(filepath.Join(out, "testapp-*"))
	if len(traces) != 2 {
		t.Fatalf("trace directories %v, want one per app", traces)
	}
	for _, tr := range traces {
		checkComplete(t, checkSeqs(t, babeltrace(t, tr)), 1, n)
	}
	cli(t, dir, "destroy", "-s", "s1")
}

// TestAppKilled: an app SIGKILLed in the middle of a burst loses nothing it
// committed.
func TestAppKilled(t *testing.T) {
	needBabeltrace(t)
	build(t)
	dir := filepath.Join(t.TempDir(), "d")
	out := filepath.Join(t.TempDir(), "trace")
	d := startDaemon(t, dir)
	cli(t, dir, "create", "-o", out, "--subbuf-size", "1048576", "s")
	cli(t, dir, "enable", "-s", "s", "testapp:seq")
	cli(t, dir, "start", "-s", "s")
	goFile := filepath.Join(t.TempDir(), "go")
	app, progress := startApp(t, dir, "-forever", "-pace", "-go", goFile)
	waitTracing(t, dir, 1)
	os.WriteFile(goFile, nil, 0o644) // every event from the first is traced
	var committed uint64
	for i := 0; i < 5 && progress.Scan(); i++ { // half a second of events
		committed, _ = strconv.ParseUint(progress.Text(), 10, 64)
	}
	app.Process.Kill()
	app.Wait()
	cli(t, dir, "stop", "-s", "s")
	defer func() {
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.log)
		}
	}()
	traces, _ := filepath.Glob(filepath.Join(out, "testapp-*"))
	if len(traces) != 1 {
		t.Fatalf("trace directories %v", traces)
	}
	seqs := checkSeqs(t, babeltrace(t, traces[0]))[0]
	if uint64(len(seqs)) < committed {
		t.Fatalf("trace has %d events; the app had committed at least %d before the kill", len(seqs), committed)
	}
	for i, v := range seqs {
		if v != uint64(i) {
			t.Fatalf("event %d has seq %d: a committed event was lost", i, v)
		}
	}
	t.Logf("app committed >= %d events before SIGKILL; trace holds %d", committed, len(seqs))
}

func rssKiB(t *testing.T, pid int) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatal("no VmRSS")
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestDaemonKilled: with its daemon SIGKILLed the app keeps running, at full
// speed and bounded memory; a restarted daemon records it again.
func TestDaemonKilled(t *testing.T) {
	needBabeltrace(t)
	build(t)
	dir := filepath.Join(t.TempDir(), "d")
	d := startDaemon(t, dir)
	cli(t, dir, "create", "-o", filepath.Join(t.TempDir(), "t1"), "s")
	cli(t, dir, "enable", "-s", "s", "*")
	cli(t, dir, "start", "-s", "s")
	app, progress := startApp(t, dir, "-forever")
	waitTracing(t, dir, 1)
	next := func() uint64 {
		if !progress.Scan() {
			t.Fatal("app stopped printing progress")
		}
		n, _ := strconv.ParseUint(progress.Text(), 10, 64)
		return n
	}
	next()
	d.cmd.Process.Kill()
	d.cmd.Wait()

	// The app goes on: measure its rate and memory without a daemon.
	a := next()
	rss0 := rssKiB(t, app.Process.Pid)
	for i := 0; i < 10; i++ {
		next()
	}
	b := next()
	rss1 := rssKiB(t, app.Process.Pid)
	rate := float64(b-a) / 1.1 // 11 progress lines, 100 ms apart
	t.Logf("without a daemon: %.1f M events/s, RSS %d → %d KiB", rate/1e6, rss0, rss1)
	if b <= a {
		t.Fatal("the app stopped emitting when its daemon died")
	}
	if rss1-rss0 > 8<<10 {
		t.Errorf("app memory grew by %d KiB in a second without a daemon", rss1-rss0)
	}

	// A new daemon: the app finds it and a new session records again.
	startDaemon(t, dir)
	out := filepath.Join(t.TempDir(), "t2")
	cli(t, dir, "create", "-o", out, "s2")
	cli(t, dir, "enable", "-s", "s2", "testapp:tick")
	cli(t, dir, "start", "-s", "s2")
	waitTracing(t, dir, 1)
	time.Sleep(200 * time.Millisecond)
	cli(t, dir, "stop", "-s", "s2")
	traces, _ := filepath.Glob(filepath.Join(out, "testapp-*"))
	if len(traces) != 1 {
		t.Fatalf("no trace from the restarted daemon: %v", traces)
	}
	evs := babeltrace(t, traces[0])
	if len(evs) == 0 {
		t.Fatal("restarted daemon recorded no events")
	}
	for _, e := range evs {
		if e.name != "testapp:tick" {
			t.Fatalf("event %s recorded; only testapp:tick was enabled", e.name)
		}
	}
}

// rawAgent is a hand-driven connection to agent.sock, for hostile peers.
func rawAgent(t *testing.T, dir string) *net.UnixConn {
	t.Helper()
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: filepath.Join(dir, "agent.sock"), Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// expectRefusal reads the daemon's answer: an Error with the given code,
// then the end of the connection.
func expectRefusal(t *testing.T, c *net.UnixConn, code string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<17)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("no answer from the daemon: %v", err)
	}
	h, err := protocol.Parse(buf[:n])
	if err != nil || h.Type != protocol.TypeError {
		t.Fatalf("answer %v %v, want an error message", h.Type, err)
	}
	var e protocol.Error
	if err := h.Decode(&e); err != nil || e.Code != code {
		t.Fatalf("error %+v (%v), want code %q", e, err, code)
	}
	if n, err := c.Read(buf); err == nil && n > 0 {
		t.Fatalf("connection still open after the refusal (read %d bytes)", n)
	}
}

func send(t *testing.T, c *net.UnixConn, typ protocol.Type, body any, fds ...int) {
	t.Helper()
	msg, err := protocol.Marshal(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	if _, _, err := c.WriteMsgUnix(msg, oob, nil); err != nil {
		t.Fatal(err)
	}
}

func hello(t *testing.T, c *net.UnixConn) {
	t.Helper()
	send(t, c, protocol.TypeHello, protocol.Hello{Version: protocol.Version, PID: 1, Name: "hostile"})
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 1<<17)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	if h, err := protocol.Parse(buf[:n]); err != nil || h.Type != protocol.TypeWelcome {
		t.Fatalf("hello answered with %v %v", h.Type, err)
	}
}

func memfd(t *testing.T, size int64, seal bool) int {
	t.Helper()
	fd, err := unix.MemfdCreate("hostile", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Ftruncate(fd, size); err != nil {
		t.Fatal(err)
	}
	if seal {
		if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_SEAL); err != nil {
			t.Fatal(err)
		}
	}
	return fd
}

// TestHostilePeers: garbage, truncated and oversized messages, a wrong
// version and bad ring memfds are refused with an error, and the daemon
// goes on tracing a well-behaved app at the same time.
func TestHostilePeers(t *testing.T) {
	needBabeltrace(t)
	build(t)
	dir := filepath.Join(t.TempDir(), "d")
	d := startDaemon(t, dir)
	out := filepath.Join(t.TempDir(), "trace")
	cli(t, dir, "create", "-o", out, "s")
	cli(t, dir, "enable", "-s", "s", "*")
	cli(t, dir, "start", "-s", "s")
	goFile := filepath.Join(t.TempDir(), "go")
	const n = 3000
	good, _ := startApp(t, dir, "-n", fmt.Sprint(n), "-go", goFile)
	waitTracing(t, dir, 1)

	header := func(magic uint32, version, typ uint16, length uint32) []byte {
		b := make([]byte, protocol.HeaderSize)
		binary.LittleEndian.PutUint32(b, magic)
		binary.LittleEndian.PutUint16(b[4:], version)
		binary.LittleEndian.PutUint16(b[6:], typ)
		binary.LittleEndian.PutUint32(b[8:], length)
		return b
	}
	cases := []struct {
		name string
		msg  []byte
		code string
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: usertrace\r\n\r\n"), protocol.CodeMalformed},
		{"truncated header", header(protocol.Magic, 1, 10, 0)[:9], protocol.CodeMalformed},
		{"huge length", append(header(protocol.Magic, 1, 10, 1<<30), '{', '}'), protocol.CodeMalformed},
		{"length beyond datagram", append(header(protocol.Magic, 1, 10, 100), '{', '}'), protocol.CodeMalformed},
		{"bad json", append(header(protocol.Magic, 1, 10, 5), "{{{{{"...), protocol.CodeMalformed},
		{"wrong version", append(header(protocol.Magic, 99, 10, 2), '{', '}'), protocol.CodeVersion},
		{"not a hello", append(header(protocol.Magic, 1, 14, 2), '{', '}'), protocol.CodeInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := rawAgent(t, dir)
			if _, err := conn.Write(c.msg); err != nil {
				t.Fatal(err)
			}
			expectRefusal(t, conn, c.code)
		})
	}
	t.Run("oversized datagram", func(t *testing.T) {
		conn := rawAgent(t, dir)
		conn.SetWriteBuffer(1 << 20)
		big := append(header(protocol.Magic, 1, 10, protocol.MaxBody+100), make([]byte, protocol.MaxBody+100)...)
		if _, err := conn.Write(big); err != nil {
			t.Skipf("the kernel refused a %d-byte datagram itself: %v", len(big), err)
		}
		expectRefusal(t, conn, protocol.CodeMalformed)
	})
	sessionID := func() uint64 { return 1 }
	rings := []struct {
		name string
		fds  func() []int
	}{
		{"no memfd", func() []int { return nil }},
		{"unsealed memfd", func() []int { return []int{memfd(t, 1<<20, false)} }},
		{"undersized sealed memfd", func() []int { return []int{memfd(t, 4096, true)} }},
		{"zeroed sealed memfd", func() []int { return []int{memfd(t, 1<<20, true)} }},
		{"a pipe", func() []int {
			var p [2]int
			unix.Pipe2(p[:], unix.O_CLOEXEC)
			t.Cleanup(func() { unix.Close(p[0]); unix.Close(p[1]) })
			return []int{p[0]}
		}},
	}
	for _, r := range rings {
		t.Run("ring: "+r.name, func(t *testing.T) {
			conn := rawAgent(t, dir)
			hello(t, conn)
			// The daemon opens the started session with us first: skip it.
			buf := make([]byte, 1<<17)
			conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := conn.Read(buf); err != nil {
				t.Fatal(err)
			}
			send(t, conn, protocol.TypeRingReady, protocol.RingReady{Session: sessionID()}, r.fds()...)
			expectRefusal(t, conn, protocol.CodeInvalid)
		})
	}

	// Through all of that, the good app was traced completely.
	os.WriteFile(goFile, nil, 0o644)
	if err := good.Wait(); err != nil {
		t.Fatal(err)
	}
	cli(t, dir, "stop", "-s", "s")
	traces, _ := filepath.Glob(filepath.Join(out, "testapp-*"))
	if len(traces) != 1 {
		t.Fatalf("traces %v", traces)
	}
	checkComplete(t, checkSeqs(t, babeltrace(t, traces[0])), 1, n)
	if s := status(t, dir); len(s.Apps) != 0 {
		t.Errorf("hostile connections still listed as apps: %+v", s.Apps)
	}
	if strings.Contains(d.log.String(), "panic") {
		t.Fatalf("daemon panicked:\n%s", d.log)
	}
}

// TestFlightRecorder: an --overwrite session keeps the newest events; a
// snapshot writes them without stopping the recording.
func TestFlightRecorder(t *testing.T) {
	needBabeltrace(t)
	build(t)
	dir := filepath.Join(t.TempDir(), "d")
	startDaemon(t, dir)
	out := filepath.Join(t.TempDir(), "fr")
	cli(t, dir, "create", "-o", out, "--overwrite", "--subbuf-size", "4096", "--num-subbuf", "4", "fr")
	cli(t, dir, "enable", "-s", "fr", "testapp:seq")
	cli(t, dir, "start", "-s", "fr")
	goFile := filepath.Join(t.TempDir(), "go")
	const n = 100000 // far more than 16 KiB of ring holds
	exitFile := filepath.Join(t.TempDir(), "exit")
	app, stdout := startApp(t, dir, "-n", fmt.Sprint(n), "-go", goFile, "-exit", exitFile)
	waitTracing(t, dir, 1)
	os.WriteFile(goFile, nil, 0o644)
	if !stdout.Scan() || stdout.Text() != "done" {
		t.Fatal("app did not finish emitting")
	}
	snap := cli(t, dir, "snapshot", "-s", "fr") // while the app still runs
	os.WriteFile(exitFile, nil, 0o644)
	m := regexp.MustCompile(`: (\d+) events in (\S+)`).FindStringSubmatch(snap)
	if m == nil {
		t.Fatalf("snapshot said %q", snap)
	}
	if err := app.Wait(); err != nil {
		t.Fatal(err)
	}
	cli(t, dir, "stop", "-s", "fr")
	for _, tr := range []string{m[2], out} {
		traces, _ := tracedirs(tr)
		if len(traces) == 0 {
			t.Fatalf("no trace under %s", tr)
		}
		seqs := checkSeqs(t, babeltrace(t, traces[0]))[0]
		if len(seqs) == 0 || len(seqs) >= n {
			t.Fatalf("%s: %d events; a 16 KiB flight recorder keeps some, not all %d", tr, len(seqs), n)
		}
		// The newest events of each shard: in order, none twice, ending with
		// the very last one. (Not one consecutive run: the goroutine moves
		// between Ps, so each shard's ring holds its own newest events.)
		for i := 1; i < len(seqs); i++ {
			if seqs[i] <= seqs[i-1] {
				t.Fatalf("%s: seq %d follows %d", tr, seqs[i], seqs[i-1])
			}
		}
		if last := seqs[len(seqs)-1]; last != n-1 {
			t.Fatalf("%s: newest event %d, want %d", tr, last, n-1)
		}
	}
}

// tracedirs lists the app trace directories under dir.
func tracedirs(dir string) ([]string, error) {
	return filepath.Glob(filepath.Join(dir, "testapp-*"))
}
