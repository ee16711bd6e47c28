// Package client talks to a usertraced daemon over its control socket: the
// library behind the usertrace CLI, for programs that drive tracing
// sessions themselves.
package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/usertrace/usertrace/daemon"
	"github.com/usertrace/usertrace/protocol"
)

// EnvDir names the daemon directory for clients and usertraced.
const EnvDir = "USERTRACE_DIR"

// DefaultDir returns the daemon directory a client uses: $USERTRACE_DIR,
// else /run/usertrace for root, else $XDG_RUNTIME_DIR/usertrace.
func DefaultDir() string {
	if d := os.Getenv(EnvDir); d != "" {
		return d
	}
	if os.Geteuid() == 0 {
		return "/run/usertrace"
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "usertrace")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("usertrace-%d", os.Geteuid()))
}

// Client is a connection to one daemon. It is not safe for concurrent use.
type Client struct {
	c *protocol.Conn
}

// Dial connects to the daemon in dir.
func Dial(dir string) (*Client, error) {
	path := filepath.Join(dir, daemon.ControlSocket)
	c, err := protocol.Dial(path)
	if err != nil {
		if errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ECONNREFUSED) {
			return nil, fmt.Errorf("no daemon at %s: start one with `usertraced -d %s`, or use `usertrace record -- CMD` which needs none", dir, dir)
		}
		return nil, fmt.Errorf("connect to daemon at %s: %w", dir, err)
	}
	return &Client{c: c}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.c.Close() }

// Do sends a request and waits for its response. A refusal from the daemon
// is returned as a *protocol.Error.
func (c *Client) Do(req protocol.Request) (protocol.Response, error) {
	if err := c.c.Send(protocol.TypeRequest, req); err != nil {
		return protocol.Response{}, err
	}
	for {
		h, files, err := c.c.Recv()
		protocol.CloseFiles(files)
		if err != nil {
			return protocol.Response{}, fmt.Errorf("%s: %w", req.Op, err)
		}
		switch h.Type {
		case protocol.TypeResponse:
			var r protocol.Response
			if err := h.Decode(&r); err != nil {
				return protocol.Response{}, err
			}
			if r.Error != nil {
				return r, r.Error
			}
			return r, nil
		case protocol.TypeError:
			var e protocol.Error
			if err := h.Decode(&e); err != nil {
				return protocol.Response{}, err
			}
			return protocol.Response{}, &e
		}
	}
}
