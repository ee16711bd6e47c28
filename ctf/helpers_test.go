package ctf_test

import (
	"testing"

	"github.com/usertrace/usertrace/ring"
)

func openReader(t testing.TB, w *ring.Writer) *ring.Reader {
	t.Helper()
	r, err := w.NewReader()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
