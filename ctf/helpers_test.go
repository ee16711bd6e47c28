package ctf_test

import (
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/ring"
)

func openReader(t testing.TB, w *ring.Writer) *ring.Reader {
	t.Helper()
	fd, err := unix.Dup(int(w.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ring.Open(os.NewFile(uintptr(fd), "ring"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
