package scope_test

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/scope"
)

func pair(t *testing.T) (server, client *net.UnixConn) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		t.Fatal(err)
	}
	server, err = ln.AcceptUnix()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func self(t *testing.T) *scope.Scope {
	t.Helper()
	s, err := scope.Self()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConnSameNamespace: a peer in the daemon's own namespace is in scope at
// depth 0, with its real pid and this process's namespace ids, through
// SO_PEERPIDFD and through the SO_PEERCRED fallback.
func TestConnSameNamespace(t *testing.T) {
	for _, fallback := range []bool{false, true} {
		s := self(t)
		s.Fallback = fallback
		server, _ := pair(t)
		p, err := s.Conn(server)
		if err != nil {
			t.Fatalf("fallback=%v: %v", fallback, err)
		}
		defer p.Close()
		if p.PID != os.Getpid() || p.Depth != 0 || p.Fallback != fallback {
			t.Errorf("fallback=%v: peer %+v, want pid %d depth 0", fallback, p, os.Getpid())
		}
		if own := scope.Namespaces(); p.NS != own || own.PID == 0 || own.Mnt == 0 || own.Net == 0 || own.User == 0 || own.Cgroup == 0 {
			t.Errorf("peer namespaces %+v, own %+v", p.NS, own)
		}
		if s.ID() != p.NS.PID {
			t.Errorf("scope id %d, peer pid ns %d", s.ID(), p.NS.PID)
		}
	}
}

// TestProcess: a child's pidfd is in scope; a file that is not a pidfd and
// an exited process are refused with ErrOutOfScope.
func TestProcess(t *testing.T) {
	s := self(t)
	cmd := exec.Command("sleep", "10")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	fd, err := unix.PidfdOpen(cmd.Process.Pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	p, err := s.Process(f)
	if err != nil {
		t.Fatal(err)
	}
	if p.PID != cmd.Process.Pid || p.Depth != 0 {
		t.Errorf("peer %+v", p)
	}
	p.Close()

	mfd, err := unix.MemfdCreate("x", unix.MFD_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	mf := os.NewFile(uintptr(mfd), "memfd")
	defer mf.Close()
	if _, err := s.Process(mf); !errors.Is(err, scope.ErrOutOfScope) {
		t.Errorf("memfd: %v, want ErrOutOfScope", err)
	}

	cmd.Process.Kill()
	cmd.Wait()
	if _, err := s.Process(f); !errors.Is(err, scope.ErrOutOfScope) {
		t.Errorf("exited process: %v, want ErrOutOfScope", err)
	}
}
