package e2e

// Containers: the test binary re-executes itself into nested user, pid and
// mount (and network) namespaces and drives real daemons, apps and CLIs in
// each, to prove what each tenant can and cannot see (docs/threat-model.md).
// Every cross-tenant attempt becomes a row of docs/containers-results.md:
// `go test ./e2e -run TestContainers -update` rewrites it, a normal run
// fails if it is not current.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/protocol"
)

var update = flag.Bool("update", false, "rewrite docs/containers-results.md from this run")

// Environment of a re-executed helper.
const (
	envHelper = "USERTRACE_NSHELPER" // the helper's name
	envCtl    = "USERTRACE_NSCTL"    // the test's control socket
)

func init() {
	if name := os.Getenv(envHelper); name != "" {
		os.Exit(helperMain(name, os.Getenv(envCtl)))
	}
}

// nsReq is a command to a helper; nsResp its answer.
type nsReq struct {
	Op    string   `json:"op"` // start, run, wait, kill, forge
	ID    string   `json:"id,omitempty"`
	Argv  []string `json:"argv,omitempty"`
	Argv0 string   `json:"argv0,omitempty"` // the program name the process sees
	Env   []string `json:"env,omitempty"`
	NS    []string `json:"ns,omitempty"`  // user, pid, mnt, net: new namespaces
	Map   int      `json:"map,omitempty"` // host uid/gid that root in the new user namespace maps to
	FD3   string   `json:"fd3,omitempty"` // "inherit": pass our fd 3 on; "self": a pidfd of this helper
	// forge:
	Parent string `json:"parent,omitempty"` // a daemon directory
	Pidfd  string `json:"pidfd,omitempty"`  // "self", "fd3", "none": what to forward
	Ring   bool   `json:"ring,omitempty"`   // after acceptance, answer a session with an unsealed ring
}

type nsResp struct {
	PID  int    `json:"pid,omitempty"`
	Out  string `json:"out,omitempty"`
	Code int    `json:"code"`
	Err  string `json:"err,omitempty"`
}

// helperMain serves the test over its control socket until it closes.
// It runs as pid 1 of its namespace: when it exits, its namespace dies.
func helperMain(name, ctl string) int {
	if os.Getpid() == 1 {
		// pid 1 of a new pid namespace, in a new mount namespace: mount a
		// /proc that shows this namespace (Go writes the uid_map of the
		// helpers it makes under /proc/PID), without touching the host's.
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err == nil {
			if err := unix.Mount("proc", "/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
				fmt.Fprintf(os.Stderr, "helper %s: mount /proc: %v\n", name, err)
			}
		}
	}
	c, err := net.Dial("unix", ctl)
	if err != nil {
		fmt.Fprintf(os.Stderr, "helper %s: %v\n", name, err)
		return 1
	}
	defer c.Close()
	enc := json.NewEncoder(c)
	enc.Encode(nsResp{Out: name, PID: os.Getpid()})
	dec := json.NewDecoder(bufio.NewReader(c))
	procs := map[string]*helperProc{}
	defer func() {
		for _, p := range procs {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
	}()
	for {
		var req nsReq
		if err := dec.Decode(&req); err != nil {
			return 0
		}
		var resp nsResp
		switch req.Op {
		case "start", "run":
			p, err := helperStart(req)
			if err != nil {
				resp.Err = err.Error()
				break
			}
			resp.PID = p.cmd.Process.Pid
			if req.Op == "run" {
				resp.Code, resp.Out = p.wait()
			} else {
				procs[req.ID] = p
			}
		case "wait", "kill":
			p := procs[req.ID]
			if p == nil {
				resp.Err = "no process " + req.ID
				break
			}
			if req.Op == "kill" {
				p.cmd.Process.Kill()
			}
			resp.Code, resp.Out = p.wait()
			delete(procs, req.ID)
		case "forge":
			resp.Out, resp.Err = forge(req)
		default:
			resp.Err = "unknown op " + req.Op
		}
		if err := enc.Encode(resp); err != nil {
			return 0
		}
	}
}

type helperProc struct {
	cmd *exec.Cmd
	out *syncBuffer
}

func (p *helperProc) wait() (int, string) {
	p.cmd.Wait()
	return p.cmd.ProcessState.ExitCode(), p.out.String()
}

func helperStart(req nsReq) (*helperProc, error) {
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	if req.Argv0 != "" {
		cmd.Args[0] = req.Argv0
	}
	cmd.Env = append(os.Environ(), req.Env...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = nsAttr(req.NS, req.Map)
	switch req.FD3 {
	case "inherit":
		cmd.ExtraFiles = []*os.File{os.NewFile(3, "fd3")}
	case "self":
		fd, err := unix.PidfdOpen(os.Getpid(), 0)
		if err != nil {
			return nil, err
		}
		f := os.NewFile(uintptr(fd), "pidfd")
		defer f.Close()
		cmd.ExtraFiles = []*os.File{f}
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	return &helperProc{cmd: cmd, out: out}, nil
}

// nsAttr makes new namespaces; root in a new user namespace maps to host
// id hostID (whoever we are, we may map our own id).
func nsAttr(ns []string, hostID int) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{}
	for _, n := range ns {
		switch n {
		case "user":
			a.Cloneflags |= syscall.CLONE_NEWUSER
			a.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostID, Size: 1}}
			a.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostID, Size: 1}}
			a.Credential = &syscall.Credential{Uid: 0, Gid: 0, NoSetGroups: true}
		case "pid":
			a.Cloneflags |= syscall.CLONE_NEWPID
		case "mnt":
			a.Cloneflags |= syscall.CLONE_NEWNS
		case "net":
			a.Cloneflags |= syscall.CLONE_NEWNET
		}
	}
	return a
}

// forge plays a forwarding daemon by hand against req.Parent: it forwards
// the process named by req.Pidfd and reports the parent's answer.
func forge(req nsReq) (string, string) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: filepath.Join(req.Parent, "agent.sock"), Net: "unixpacket"})
	if err != nil {
		return "", err.Error()
	}
	defer c.Close()
	pc := protocol.NewConn(c)
	if err := pc.Send(protocol.TypeForwardHello, protocol.ForwardHello{Version: protocol.Version, Name: "forger"}); err != nil {
		return "", err.Error()
	}
	recv := func() (protocol.Header, error) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		h, files, err := pc.Recv()
		protocol.CloseFiles(files)
		return h, err
	}
	h, err := recv()
	if err != nil {
		return "", err.Error()
	}
	if h.Type != protocol.TypeWelcome {
		var e protocol.Error
		h.Decode(&e)
		return "hello refused: " + e.Code + ": " + e.Message, ""
	}
	var files []*os.File
	switch req.Pidfd {
	case "self":
		fd, err := unix.PidfdOpen(os.Getpid(), 0)
		if err != nil {
			return "", err.Error()
		}
		files = append(files, os.NewFile(uintptr(fd), "pidfd"))
	case "fd3":
		files = append(files, os.NewFile(3, "fd3"))
	}
	if err := pc.Send(protocol.TypeForwardApp, protocol.ForwardApp{App: 7, Name: "forged", HelloPID: 1}, files...); err != nil {
		return "", err.Error()
	}
	if req.Pidfd == "self" {
		files[0].Close()
	}
	for {
		h, err := recv()
		if err != nil {
			return "", err.Error()
		}
		switch h.Type {
		case protocol.TypeForwardAnswer:
			var a protocol.ForwardAnswer
			h.Decode(&a)
			if a.Error != nil {
				return "app refused: " + a.Error.Code + ": " + a.Error.Message, ""
			}
			if !req.Ring {
				return "app accepted", ""
			}
		case protocol.TypeRelay:
			var r protocol.Relay
			h.Decode(&r)
			if r.Type != protocol.TypeSessionOpen {
				continue
			}
			var so protocol.SessionOpen
			json.Unmarshal(r.Body, &so)
			fd, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
			if err != nil {
				return "", err.Error()
			}
			unix.Ftruncate(fd, 1<<20)
			mf := os.NewFile(uintptr(fd), "memfd")
			body, _ := json.Marshal(protocol.RingReady{Session: so.Session})
			pc.Send(protocol.TypeRelay, protocol.Relay{App: 7, Type: protocol.TypeRingReady, Body: body}, mf)
			mf.Close()
		case protocol.TypeForwardGone:
			return "app dropped after its ring", ""
		}
	}
}

// ---- The test's side. ----

// nsHost accepts the helpers' control connections.
type nsHost struct {
	t   *testing.T
	ln  *net.UnixListener
	bin string // this test binary, where every uid may run it

	mu      sync.Mutex
	helpers map[string]chan *nsHelper
}

type nsHelper struct {
	name string
	c    net.Conn
	enc  *json.Encoder
	dec  *json.Decoder
	mu   sync.Mutex
}

func (h *nsHost) waitHelper(name string) *nsHelper {
	h.t.Helper()
	select {
	case x := <-h.ch(name):
		return x
	case <-time.After(10 * time.Second):
		h.t.Fatalf("helper %s never called back", name)
		return nil
	}
}

func (h *nsHost) ch(name string) chan *nsHelper {
	h.mu.Lock()
	defer h.mu.Unlock()
	c := h.helpers[name]
	if c == nil {
		c = make(chan *nsHelper, 1)
		h.helpers[name] = c
	}
	return c
}

func (h *nsHost) accept() {
	for {
		c, err := h.ln.Accept()
		if err != nil {
			return
		}
		x := &nsHelper{c: c, enc: json.NewEncoder(c), dec: json.NewDecoder(bufio.NewReader(c))}
		var hello nsResp
		if err := x.dec.Decode(&hello); err != nil {
			c.Close()
			continue
		}
		x.name = hello.Out
		h.ch(x.name) <- x
	}
}

func (x *nsHelper) call(t *testing.T, req nsReq) nsResp {
	t.Helper()
	x.mu.Lock()
	defer x.mu.Unlock()
	if err := x.enc.Encode(req); err != nil {
		t.Fatalf("helper %s: %v", x.name, err)
	}
	var resp nsResp
	if err := x.dec.Decode(&resp); err != nil {
		t.Fatalf("helper %s: %v", x.name, err)
	}
	if resp.Err != "" {
		t.Fatalf("helper %s: %s: %s", x.name, req.Op, resp.Err)
	}
	return resp
}

// spawn starts a helper named name as a child of parent (nil: of the test)
// in new namespaces ns, root mapping to host id mapTo.
func (h *nsHost) spawn(parent *nsHelper, name string, ns []string, mapTo int, extra nsReq) *nsHelper {
	h.t.Helper()
	env := []string{envHelper + "=" + name, envCtl + "=" + h.ln.Addr().String()}
	if parent != nil {
		extra.Op, extra.ID, extra.Argv, extra.Env, extra.NS, extra.Map = "start", "helper-"+name, []string{h.bin}, env, ns, mapTo
		parent.call(h.t, extra)
	} else {
		cmd := exec.Command(h.bin)
		cmd.Env = append(os.Environ(), env...)
		cmd.Stderr = os.Stderr
		cmd.SysProcAttr = nsAttr(ns, mapTo)
		if extra.Map < 0 { // the unprivileged run: nobody, no new namespace
			cmd.SysProcAttr.Credential = &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}
		}
		if extra.FD3 != "" {
			fd, err := unix.PidfdOpen(atoi(extra.FD3), 0)
			if err != nil {
				h.t.Fatal(err)
			}
			f := os.NewFile(uintptr(fd), "pidfd")
			defer f.Close()
			cmd.ExtraFiles = []*os.File{f}
		}
		if err := cmd.Start(); err != nil {
			h.t.Fatalf("start helper %s: %v", name, err)
		}
		h.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	}
	x := h.waitHelper(name)
	h.t.Cleanup(func() { x.c.Close() })
	return x
}

func atoi(s string) int {
	var n int
	fmt.Sscan(s, &n)
	return n
}

// usernsError reports why this machine cannot make user namespaces, or "".
func usernsError() string {
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = nsAttr([]string{"user", "pid", "mnt"}, os.Getuid())
	if err := cmd.Run(); err != nil {
		b, _ := os.ReadFile("/proc/sys/user/max_user_namespaces")
		return fmt.Sprintf("cannot create user+pid+mount namespaces (%v; user.max_user_namespaces = %s)", err, strings.TrimSpace(string(b)))
	}
	return ""
}

// result is one row of docs/containers-results.md.
type result struct{ attempt, from, to, want, got string }

type results struct {
	t    *testing.T
	rows []result
}

// add records an attempt; want is the outcome the threat model requires.
func (r *results) add(attempt, from, to, want, got string) {
	r.t.Helper()
	r.rows = append(r.rows, result{attempt, from, to, want, got})
	if got != want {
		r.t.Errorf("%s (%s → %s): got %q, want %q", attempt, from, to, got, want)
	}
}

func (r *results) table() []byte {
	var b bytes.Buffer
	b.WriteString(`# Cross-tenant attempts and their results

Generated by ` + "`go test ./e2e -run TestContainers -update`" + ` (e2e/ns_test.go) from a real
run: a host daemon, containers made of new user+pid+mount namespaces (one also
with its own network namespace, one run as an unprivileged user), a nested
daemon forwarding to the host's, and a sibling container. A normal test run
fails if this file is not what the run produces. The threat model is
docs/threat-model.md.

Tenants: **host** (the test's own namespaces), **c1** (a container; its
daemon forwards to the host's), **c2** (nested in c1), **sib** (a sibling of
c1), **u1** (a container made by uid 65534, root inside mapped to nobody
outside), **n1** (a container with its own network namespace).

| # | attempt | from | to | required | result |
|---|---|---|---|---|---|
`)
	for i, x := range r.rows {
		ok := "✅ " + x.got
		if x.got != x.want {
			ok = "❌ " + x.got
		}
		fmt.Fprintf(&b, "| %d | %s | %s | %s | %s | %s |\n", i+1, x.attempt, x.from, x.to, x.want, ok)
	}
	return b.Bytes()
}

// TestContainers: apps, daemons and clients in nested, sibling,
// unprivileged and network-isolated containers; see docs/threat-model.md.
func TestContainers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make the containers' user namespaces map to host root (CI runs as root)")
	}
	if why := usernsError(); why != "" {
		t.Skip(why)
	}
	needBabeltrace(t)
	build(t)
	base, err := os.MkdirTemp("", "usertrace-ns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o777)     // nobody creates its daemon here
	os.Chmod(bins.dir, 0o755) // and runs the binaries
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := &nsHost{t: t, bin: filepath.Join(base, "e2e.test"), helpers: map[string]chan *nsHelper{}}
	if b, err := os.ReadFile(self); err != nil || os.WriteFile(h.bin, b, 0o755) != nil {
		t.Fatalf("copy the test binary: %v", err)
	}
	h.ln, err = net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(base, "ctl"), Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(filepath.Join(base, "ctl"), 0o777)
	defer h.ln.Close()
	go h.accept()

	dir := func(name string) string { return filepath.Join(base, name) }
	goFile, exitFile := dir("go"), dir("exit")
	res := &results{t: t}

	// The host: a daemon and a session tracing everything.
	hostD := dir("host")
	hd := startDaemon(t, hostD)
	defer func() {
		if t.Failed() {
			t.Logf("host daemon log:\n%s", hd.log)
		}
	}()
	cli(t, hostD, "create", "-o", dir("host-trace"), "hs")
	cli(t, hostD, "enable", "-s", "hs", "testapp:*")
	cli(t, hostD, "start", "-s", "hs")

	// A process outside every container, for forged forwards.
	outsider := exec.Command("sleep", "600")
	if err := outsider.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { outsider.Process.Kill(); outsider.Wait() }()

	root := []string{"user", "pid", "mnt"}
	c1 := h.spawn(nil, "c1", root, 0, nsReq{FD3: fmt.Sprint(outsider.Process.Pid)})
	c2 := h.spawn(c1, "c2", root, 0, nsReq{FD3: "self"}) // holds a pidfd of c1's helper
	sib := h.spawn(nil, "sib", root, 0, nsReq{})
	n1 := h.spawn(nil, "n1", append(root, "net"), 0, nsReq{})
	nobody := h.spawn(nil, "nobody", nil, 0, nsReq{Map: -1})
	u1 := h.spawn(nobody, "u1", root, 65534, nsReq{})

	appEnv := func(dirs ...string) []string {
		return []string{"USERTRACE_DAEMONS=" + strings.Join(dirs, ":"), "USERTRACE_AGENT_WAIT=3s"}
	}
	const n = 300
	app := func(x *nsHelper, name string, dirs ...string) {
		x.call(t, nsReq{Op: "start", ID: name, Argv: []string{bins.testap, "-n", fmt.Sprint(n), "-go", goFile, "-exit", exitFile},
			Argv0: name, Env: appEnv(dirs...)})
	}
	ctl := func(x *nsHelper, d string, args ...string) nsResp {
		return x.call(t, nsReq{Op: "run", Argv: append([]string{bins.usertrace, "-d", d}, args...)})
	}
	daemonIn := func(x *nsHelper, name, parent string) string {
		d := dir(name)
		argv := []string{bins.usertraced, "-d", d, "-v"}
		if parent != "" {
			argv = append(argv, "-parent", parent)
		}
		x.call(t, nsReq{Op: "start", ID: name, Argv: argv})
		deadline := time.Now().Add(5 * time.Second)
		for ctl(x, d, "status").Code != 0 {
			if time.Now().After(deadline) {
				t.Fatalf("daemon %s never answered", name)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return d
	}

	// c1 runs a daemon of its own that forwards to the host's, with a
	// session of its own.
	d1 := daemonIn(c1, "d1", hostD)
	for _, args := range [][]string{{"create", "-o", dir("d1-trace"), "s1"}, {"enable", "-s", "s1", "testapp:*"}, {"start", "-s", "s1"}} {
		if r := ctl(c1, d1, args...); r.Code != 0 {
			t.Fatalf("c1: usertrace %v: %s", args, r.Out)
		}
	}
	// u1, made by nobody, too.
	du := daemonIn(u1, "du", hostD)
	for _, args := range [][]string{{"create", "-o", dir("du-trace"), "su"}, {"enable", "-s", "su", "testapp:*"}, {"start", "-s", "su"}} {
		if r := ctl(u1, du, args...); r.Code != 0 {
			t.Fatalf("u1: usertrace %v: %s", args, r.Out)
		}
	}

	app(c1, "direct1", hostD) // depth 1, straight to the host
	app(c2, "direct2", hostD) // depth 2, straight to the host
	app(c1, "local1", d1)     // c1's own, forwarded
	app(c2, "nested2", d1)    // c2's, through c1's daemon
	app(n1, "netns1", hostD)  // its own network namespace
	app(u1, "unpriv1", du)    // an unprivileged container's, forwarded
	app(sib, "sibling", d1)   // a sibling knocking at c1's daemon

	type st = statusJSON
	appsOf := func(s st) map[string]protocol.AppStatus {
		m := map[string]protocol.AppStatus{}
		for _, a := range s.Apps {
			m[a.Name] = a
		}
		return m
	}
	ctlStatus := func(x *nsHelper, d string) (st, nsResp) {
		r := ctl(x, d, "status", "--json")
		var s st
		if r.Code == 0 {
			json.Unmarshal([]byte(r.Out), &s)
		}
		return s, r
	}
	tracing := func(s st, names ...string) bool {
		m := appsOf(s)
		for _, name := range names {
			if m[name].Sessions == 0 {
				return false
			}
		}
		return true
	}
	waitFor(t, 15*time.Second, "the host daemon to trace every app in its scope", func() bool {
		return tracing(status(t, hostD), "direct1", "direct2", "local1", "nested2", "netns1", "unpriv1")
	})
	waitFor(t, 10*time.Second, "c1's daemon to trace its apps", func() bool {
		s, _ := ctlStatus(c1, d1)
		return tracing(s, "local1", "nested2")
	})
	waitFor(t, 10*time.Second, "u1's daemon to trace its app", func() bool {
		s, _ := ctlStatus(u1, du)
		return tracing(s, "unpriv1")
	})

	hs := appsOf(status(t, hostD))
	admitted := func(name string) string {
		a, ok := hs[name]
		if !ok {
			return "not admitted"
		}
		return fmt.Sprintf("admitted at depth %d", a.Depth)
	}
	res.add("app connects to the host daemon", "c1", "host", "admitted at depth 1", admitted("direct1"))
	res.add("app connects to the host daemon", "c2", "host", "admitted at depth 2", admitted("direct2"))
	res.add("app connects to the host daemon", "n1 (own net ns)", "host", "admitted at depth 1", admitted("netns1"))
	res.add("app of c1's daemon, forwarded up", "c1", "host", "admitted at depth 1", admitted("local1"))
	res.add("app of c1's daemon (nested in c2), forwarded up", "c2", "host", "admitted at depth 2", admitted("nested2"))
	res.add("app of an unprivileged container's daemon, forwarded up", "u1", "host", "admitted at depth 1", admitted("unpriv1"))
	res.add("app connects to c1's daemon", "sib", "c1", "not admitted", admitted("sibling"))
	if hs["netns1"].Namespaces["net"] == hs["direct1"].Namespaces["net"] || hs["netns1"].Namespaces["net"] == 0 {
		t.Errorf("net namespace ids not told apart: %v vs %v", hs["netns1"].Namespaces, hs["direct1"].Namespaces)
	}
	if hs["direct1"].Namespaces["pid"] == hs["direct2"].Namespaces["pid"] || hs["unpriv1"].Namespaces["user"] == hs["direct1"].Namespaces["user"] {
		t.Errorf("pid or user namespace ids not told apart: %+v", hs)
	}

	s1, _ := ctlStatus(c1, d1)
	res.add("status of c1's daemon lists", "c1", "c1", "local1 nested2", names(s1))
	su, _ := ctlStatus(u1, du)
	res.add("status of u1's daemon lists", "u1", "u1", "unpriv1", names(su))
	r := ctl(c1, d1, "list", "--json")
	res.add("list of c1's daemon shows events of", "c1", "c1", "local1 nested2", listApps(r.Out))

	refusal := func(r nsResp) string {
		if r.Code == 0 {
			return "answered"
		}
		return strings.TrimSpace(r.Out[strings.LastIndex(r.Out, ":")+1:])
	}
	res.add("status from a sibling", "sib", "c1", "refused", refusal(ctl(sib, d1, "status")))
	res.add("list from a sibling", "sib", "c1", "refused", refusal(ctl(sib, d1, "list")))
	res.add("create a session from a sibling", "sib", "c1", "refused", refusal(ctl(sib, d1, "create", "-o", dir("sib-trace"), "x")))
	res.add("status from a nested tenant", "c1", "host", "refused", refusal(ctl(c1, hostD, "status")))
	res.add("stop the parent's session from a nested tenant", "c2", "host", "refused", refusal(ctl(c2, hostD, "stop", "-s", "hs")))
	res.add("status of the parent's daemon from an unprivileged tenant", "u1", "host", "permission denied", refusal(ctl(u1, hostD, "status")))

	forge := func(x *nsHelper, parent, pidfd string, ring bool) string {
		return x.call(t, nsReq{Op: "forge", Parent: parent, Pidfd: pidfd, Ring: ring}).Out
	}
	res.add("forward itself (control)", "c1", "host", "app accepted", forge(c1, hostD, "self", false))
	res.add("forward a host process (pidfd passed in)", "c1", "host", "app refused: refused: refused", forge(c1, hostD, "fd3", false))
	res.add("forward its parent's process (pidfd passed in)", "c2", "host", "app refused: refused: refused", forge(c2, hostD, "fd3", false))
	res.add("forward with no pidfd", "c1", "host", "app refused: refused: refused", forge(c1, hostD, "none", false))
	res.add("forward to a sibling's daemon", "sib", "c1", "hello refused: refused: refused", forge(sib, d1, "self", false))
	res.add("forwarded app hands over an unsealed ring", "c1", "host", "app dropped after its ring", forge(c1, hostD, "self", true))
	outsider.Process.Kill()
	outsider.Wait()
	res.add("forward an exited host process (pidfd passed in)", "c1", "host", "app refused: refused: refused", forge(c1, hostD, "fd3", false))

	// Every app emits; every daemon stops its session.
	os.WriteFile(goFile, nil, 0o644)
	time.Sleep(500 * time.Millisecond)
	cli(t, hostD, "stop", "-s", "hs")
	for _, x := range []struct {
		h    *nsHelper
		d, s string
	}{{c1, d1, "s1"}, {u1, du, "su"}} {
		if r := ctl(x.h, x.d, "stop", "-s", x.s); r.Code != 0 {
			t.Fatalf("stop %s: %s", x.s, r.Out)
		}
	}
	os.WriteFile(exitFile, nil, 0o644)

	traced := func(out string) string {
		dirs, _ := filepath.Glob(filepath.Join(out, "*"))
		var got []string
		for _, d := range dirs {
			name := filepath.Base(d)
			name = name[:strings.IndexByte(name, '-')]
			seqs := checkSeqs(t, babeltrace(t, d))
			checkComplete(t, seqs, 1, n)
			got = append(got, name)
		}
		return strings.Join(sortStrings(got), " ")
	}
	res.add("traces written by the host's session", "host", "host", "direct1 direct2 local1 nested2 netns1 unpriv1", traced(dir("host-trace")))
	res.add("traces written by c1's session", "c1", "c1", "local1 nested2", traced(dir("d1-trace")))
	res.add("traces written by u1's session", "u1", "u1", "unpriv1", traced(dir("du-trace")))
	v := ctl(c1, d1, "view", dir("d1-trace"))
	res.add("view of c1's traces shows events of", "c1", "c1", "local1 nested2", viewApps(v.Out))

	// The recorded namespace ids come from the connection.
	var info struct {
		PID        int               `json:"pid"`
		HelloPID   int               `json:"hello_pid"`
		Depth      int               `json:"pidns_depth"`
		Namespaces map[string]uint64 `json:"namespaces"`
	}
	tr, _ := filepath.Glob(filepath.Join(dir("host-trace"), "nested2-*", ".usertrace", "trace.json"))
	if len(tr) != 1 {
		t.Fatalf("no sidecar for nested2: %v", tr)
	}
	b, _ := os.ReadFile(tr[0])
	json.Unmarshal(b, &info)
	if info.Depth != 2 || info.Namespaces["pid"] != hs["nested2"].Namespaces["pid"] || info.PID != hs["nested2"].PID || info.HelloPID == info.PID {
		t.Errorf("nested2's trace info %s; status %+v", b, hs["nested2"])
	}

	table := res.table()
	golden := filepath.Join("..", "docs", "containers-results.md")
	if *update {
		if err := os.WriteFile(golden, table, 0o644); err != nil {
			t.Fatal(err)
		}
	} else if old, err := os.ReadFile(golden); err != nil || !bytes.Equal(old, table) {
		t.Errorf("%s is not current (run go test ./e2e -run TestContainers -update); this run:\n%s", golden, table)
	}
}

func names(s statusJSON) string {
	var n []string
	for _, a := range s.Apps {
		n = append(n, a.Name)
	}
	return strings.Join(sortStrings(n), " ")
}

func listApps(out string) string {
	var evs []protocol.EventInfo
	json.Unmarshal([]byte(out), &evs)
	seen := map[string]bool{}
	var n []string
	for _, e := range evs {
		if !seen[e.App] {
			seen[e.App] = true
			n = append(n, e.App)
		}
	}
	return strings.Join(sortStrings(n), " ")
}

// viewApps returns the apps named in `usertrace view` lines ("app/pid").
func viewApps(out string) string {
	seen := map[string]bool{}
	var n []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		for _, w := range f {
			if i := strings.IndexByte(w, '/'); i > 0 && !strings.Contains(w, ":") {
				if !seen[w[:i]] {
					seen[w[:i]] = true
					n = append(n, w[:i])
				}
				break
			}
		}
	}
	return strings.Join(sortStrings(n), " ")
}

func sortStrings(s []string) []string {
	sort.Strings(s)
	return s
}
