package memfd

import (
	"errors"
	"fmt"
	"net"
	"os"

	"golang.org/x/sys/unix"
)

// SendFile sends f's descriptor and a short message over a unix socket
// (SCM_RIGHTS). msg must not be empty.
func SendFile(c *net.UnixConn, f *os.File, msg []byte) error {
	if len(msg) == 0 {
		return errors.New("send fd: empty message")
	}
	oob := unix.UnixRights(int(f.Fd()))
	n, oobn, err := c.WriteMsgUnix(msg, oob, nil)
	if err != nil {
		return fmt.Errorf("send fd: %w", err)
	}
	if n != len(msg) || oobn != len(oob) {
		return fmt.Errorf("send fd: short write (%d/%d bytes, %d/%d control)", n, len(msg), oobn, len(oob))
	}
	return nil
}

// RecvFile receives one descriptor and its message, sent by [SendFile]. Any
// extra descriptors are closed; a message without exactly one is an error.
func RecvFile(c *net.UnixConn, maxMsg int) (*os.File, []byte, error) {
	buf := make([]byte, maxMsg)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, flags, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		return nil, nil, fmt.Errorf("receive fd: %w", err)
	}
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, nil, fmt.Errorf("receive fd: %w", err)
	}
	var fds []int
	for _, m := range msgs {
		if rights, err := unix.ParseUnixRights(&m); err == nil {
			fds = append(fds, rights...)
		}
	}
	if len(fds) != 1 || flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, fmt.Errorf("receive fd: got %d descriptors (flags %#x), want exactly 1", len(fds), flags)
	}
	unix.CloseOnExec(fds[0])
	return os.NewFile(uintptr(fds[0]), "memfd(received)"), buf[:n], nil
}
