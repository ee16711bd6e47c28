package daemon

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/protocol"
)

// bulk is a relay body of 16 KiB: a socket buffer (~200 KiB) holds about a
// dozen, so a sender that waited for the parent would block.
var bulk = json.RawMessage(`"` + strings.Repeat("x", 16<<10) + `"`)

// linkPair is a connected unixpacket pair: the forwarder's end in an
// upstream with its writer running, and the parent's end.
func linkPair(t *testing.T) (*upstream, *protocol.Conn) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	conn := func(fd int) *protocol.Conn {
		f := os.NewFile(uintptr(fd), "link")
		defer f.Close()
		c, err := net.FileConn(f)
		if err != nil {
			t.Fatal(err)
		}
		return protocol.NewConn(c.(*net.UnixConn))
	}
	ours, parent := conn(fds[0]), conn(fds[1])
	ours.SendTimeout = upSendTimeout
	d := &Daemon{log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	up := &upstream{d: d, conn: ours, out: make(chan upMsg, upQueue), done: make(chan struct{})}
	go up.writer()
	t.Cleanup(func() { close(up.done); ours.Close(); parent.Close() })
	return up, parent
}

// TestUpstreamNeverBlocks: with a parent that reads nothing for a while,
// sending far more messages than the socket buffer holds neither
// blocks the sender nor loses one; the parent then gets them all, in
// order, with their files.
func TestUpstreamNeverBlocks(t *testing.T) {
	up, parent := linkPair(t)
	f, err := os.CreateTemp(t.TempDir(), "file")
	if err != nil {
		t.Fatal(err)
	}
	const n = 200
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		for i := range n {
			if i == n/2 {
				up.send(protocol.TypeRelay, protocol.Relay{App: uint64(i), Body: bulk}, f)
				f.Close() // send keeps its own duplicate
				continue
			}
			up.send(protocol.TypeRelay, protocol.Relay{App: uint64(i), Body: bulk})
		}
	}()
	select {
	case <-sent:
	case <-time.After(upSendTimeout / 2):
		t.Fatal("send waited for the parent to read")
	}
	for i := range n {
		h, files, err := parent.Recv()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var m protocol.Relay
		if err := json.Unmarshal(h.Body, &m); err != nil || m.App != uint64(i) {
			t.Fatalf("message %d is app %d (%v)", i, m.App, err)
		}
		if want := 0; i == n/2 {
			want = 1
			if len(files) != 1 {
				t.Fatalf("message %d came with %d files, want 1", i, len(files))
			}
			if _, err := files[0].Stat(); err != nil {
				t.Fatalf("the file sent: %v", err)
			}
		} else if len(files) != want {
			t.Fatalf("message %d came with %d files", i, len(files))
		}
		protocol.CloseFiles(files)
	}
}

// TestUpstreamOverflow: a parent that never reads ends the link once the
// queue is full, rather than dropping a message silently or blocking.
func TestUpstreamOverflow(t *testing.T) {
	up, parent := linkPair(t)
	const n = upQueue + 200 // more than the queue and the socket buffer hold
	for i := range n {
		up.send(protocol.TypeRelay, protocol.Relay{App: uint64(i), Body: bulk})
	}
	// The parent reads what was sent, in order, then the end of the link.
	for i := 0; ; i++ {
		h, _, err := parent.Recv()
		if err != nil {
			if !protocol.IsEOF(err) {
				t.Fatalf("after %d messages: %v, want the end of the link", i, err)
			}
			if i >= n {
				t.Fatalf("all %d messages arrived: the queue never overflowed", i)
			}
			return
		}
		var m protocol.Relay
		if err := json.Unmarshal(h.Body, &m); err != nil || m.App != uint64(i) {
			t.Fatalf("message %d is app %d (%v)", i, m.App, err)
		}
	}
}
