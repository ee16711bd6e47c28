package memfd

import (
	"errors"
	"net"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func TestCreateOpenSendRecv(t *testing.T) {
	m, err := Create("test", 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	m.Bytes()[100] = 42

	a, b, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	defer b.Close()
	if err := SendFile(a, m.File(), []byte("ring")); err != nil {
		t.Fatal(err)
	}
	f, msg, err := RecvFile(b, 64)
	if err != nil {
		t.Fatal(err)
	}
	if string(msg) != "ring" {
		t.Fatalf("message %q", msg)
	}
	if _, err := Open(f, 4096, 0); !errors.Is(err, ErrSize) {
		t.Fatalf("Open with wrong size: %v, want ErrSize", err)
	}
	r, err := Open(f, 8192, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Bytes()[100] != 42 {
		t.Fatal("mapping does not share memory")
	}
	r.Bytes()[101] = 7
	if m.Bytes()[101] != 7 {
		t.Fatal("writes do not reach the creator")
	}
	if err := unix.Ftruncate(int(m.File().Fd()), 4096); err == nil {
		t.Fatal("sealed memfd could be shrunk")
	}
}

func TestOpenRefusesUnsealed(t *testing.T) {
	fd, err := unix.MemfdCreate("unsealed", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "unsealed")
	defer f.Close()
	unix.Ftruncate(fd, 4096)
	if _, err := Open(f, 4096, 0); !errors.Is(err, ErrNotSealed) {
		t.Fatalf("Open(unsealed memfd) = %v, want ErrNotSealed", err)
	}
	g, err := os.CreateTemp(t.TempDir(), "plain")
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if _, err := Open(g, 0, 1<<20); !errors.Is(err, ErrNotSealed) {
		t.Fatalf("Open(plain file) = %v, want ErrNotSealed", err)
	}
}

func socketPair() (*net.UnixConn, *net.UnixConn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	conn := func(fd int) *net.UnixConn {
		f := os.NewFile(uintptr(fd), "socketpair")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			panic(err)
		}
		return c.(*net.UnixConn)
	}
	return conn(fds[0]), conn(fds[1]), nil
}
