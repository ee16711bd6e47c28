package protocol

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is one SOCK_SEQPACKET connection carrying protocol messages. Send is
// safe for concurrent use; Recv is not (one reader per connection).
type Conn struct {
	// SendTimeout, if set, bounds how long Send waits for room in the
	// socket; a send that times out fails and sends nothing (datagrams are
	// atomic).
	SendTimeout time.Duration

	c   *net.UnixConn
	wmu sync.Mutex
	buf []byte
	oob []byte
}

// NewConn wraps an established unixpacket connection.
func NewConn(c *net.UnixConn) *Conn {
	return &Conn{
		c:   c,
		buf: make([]byte, HeaderSize+MaxBody+1), // +1 detects oversized datagrams
		oob: make([]byte, unix.CmsgSpace(MaxFDs*4)),
	}
}

// Dial connects to the socket at path.
func Dial(path string) (*Conn, error) {
	c, err := net.DialUnix("unixpacket", nil, &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return nil, err
	}
	return NewConn(c), nil
}

// UnixConn returns the underlying connection (for peer credentials).
func (c *Conn) UnixConn() *net.UnixConn { return c.c }

// Close closes the connection.
func (c *Conn) Close() error { return c.c.Close() }

// Send sends one message, with files attached as SCM_RIGHTS.
func (c *Conn) Send(t Type, body any, files ...*os.File) error {
	msg, err := Marshal(t, body)
	if err != nil {
		return err
	}
	if len(files) > MaxFDs {
		return fmt.Errorf("send %s: %d files, at most %d", t, len(files), MaxFDs)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.SendTimeout > 0 {
		c.c.SetWriteDeadline(time.Now().Add(c.SendTimeout))
	}
	_, _, err = c.c.WriteMsgUnix(msg, oob, nil)
	if err != nil {
		return fmt.Errorf("send %s: %w", t, err)
	}
	return nil
}

// SendError sends an Error message.
func (c *Conn) SendError(code, format string, args ...any) error {
	return c.Send(TypeError, Error{Code: code, Message: fmt.Sprintf(format, args...)})
}

// RecvOrReject is [Conn.Recv] for a server: a message it cannot parse is
// answered with an error of code CodeMalformed before its error is
// returned. The end of the connection ([IsEOF]) is returned unanswered.
func (c *Conn) RecvOrReject() (Header, []*os.File, error) {
	h, files, err := c.Recv()
	if err != nil && !IsEOF(err) {
		c.SendError(CodeMalformed, "%v", err)
	}
	return h, files, err
}

// Recv receives one message and the files that came with it. The returned
// header's Body is valid until the next Recv. On error, any files received
// are closed. io.EOF (wrapped) means the peer closed the connection.
func (c *Conn) Recv() (Header, []*os.File, error) {
	n, oobn, flags, _, err := c.c.ReadMsgUnix(c.buf, c.oob)
	if errors.Is(err, syscall.ECONNRESET) {
		// Linux reports a peer's close with unread data as ECONNRESET
		// before handing over the datagrams still queued for us (the error
		// is checked before the queue, and cleared when reported). Those
		// datagrams may be the last words of an app that just exited:
		// read on, until the real end.
		n, oobn, flags, _, err = c.c.ReadMsgUnix(c.buf, c.oob)
	}
	files, ferr := parseRights(c.oob[:oobn])
	if err != nil {
		closeAll(files)
		return Header{}, nil, err
	}
	if n == 0 && oobn == 0 {
		closeAll(files)
		return Header{}, nil, fmt.Errorf("receive: %w", errEOF)
	}
	if ferr != nil {
		closeAll(files)
		return Header{}, nil, fmt.Errorf("%w: %v", ErrMalformed, ferr)
	}
	if flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0 || n > HeaderSize+MaxBody {
		closeAll(files)
		return Header{}, nil, fmt.Errorf("%w: datagram or its file descriptors truncated (more than %d bytes or %d files)", ErrMalformed, HeaderSize+MaxBody, MaxFDs)
	}
	h, err := Parse(c.buf[:n])
	if err != nil {
		closeAll(files)
		return Header{}, nil, err
	}
	return h, files, nil
}

var errEOF = errors.New("connection closed by peer")

// IsEOF reports whether err means the peer closed the connection.
func IsEOF(err error) bool {
	return errors.Is(err, errEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.ECONNRESET)
}

func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, err
	}
	var files []*os.File
	var bad error
	for _, m := range msgs {
		fds, err := unix.ParseUnixRights(&m)
		if err != nil {
			bad = err
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "received-fd"))
		}
	}
	if bad == nil && len(files) > MaxFDs {
		bad = fmt.Errorf("%d file descriptors, at most %d", len(files), MaxFDs)
	}
	return files, bad
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// CloseFiles closes files received with a message that will not use them.
func CloseFiles(files []*os.File) { closeAll(files) }
