// Package protocol is the versioned wire protocol between usertrace's three
// kinds of processes: the agent inside every traced application, the daemon
// usertraced, and clients such as the usertrace CLI. It is documented in
// docs/protocol.md.
//
// Every message travels alone in one SOCK_SEQPACKET datagram: a fixed 16-byte
// header, then a JSON body. File descriptors (ring memfds) ride along as
// SCM_RIGHTS ancillary data of the message that names them.
//
//	offset size field
//	0      4    magic "UTP\x01" (0x01505455 little-endian)
//	4      2    version: the sender's protocol version
//	6      2    type: what the body is (Type)
//	8      4    length of the body in bytes
//	12     4    flags (0; reserved)
//	16     ...  body: one JSON object
//
// # Rules for extending the protocol
//
//  1. A receiver ignores JSON fields it does not know; a sender never relies
//     on a new field being understood unless the peer announced a capability
//     for it in its Hello/Welcome.
//  2. A message of an unknown type is answered with an Error of code
//     "unknown-type" and otherwise ignored; the connection stays up.
//  3. Version is the protocol's major version: a peer with another version
//     is refused at Hello with code "version" and a message naming both.
//  4. A malformed message (bad magic, short header, body length that does not
//     match the datagram, body over MaxBody, JSON that does not parse) is
//     answered with an Error of code "malformed" and the connection is closed;
//     nothing else is affected.
package protocol

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path"

	"github.com/usertrace/usertrace/catalog"
)

// Version is this protocol's version.
const Version = 1

// Magic opens every message.
const Magic = 0x01505455

// HeaderSize is the size of the fixed header.
const HeaderSize = 16

// MaxBody bounds a message body. A catalog larger than this is sent in
// several Events messages.
const MaxBody = 64 << 10

// MaxFDs bounds the file descriptors one message may carry.
const MaxFDs = 4

// Type says what a message's body is.
type Type uint16

// Message types. Numbers are never reused.
const (
	TypeError Type = 1 // either way: Error

	// Agent ↔ daemon.
	TypeHello       Type = 10 // agent → daemon: Hello
	TypeWelcome     Type = 11 // daemon → agent: Welcome
	TypeEvents      Type = 12 // agent → daemon: Events (catalog records)
	TypeSessionOpen Type = 13 // daemon → agent: SessionOpen
	TypeRingReady   Type = 14 // agent → daemon: RingReady, with the ring memfd
	TypeRingIDs     Type = 15 // agent → daemon: RingIDs (more events attached)
	TypeSessionStop Type = 16 // daemon → agent: SessionStop
	TypeStopped     Type = 17 // agent → daemon: Stopped (all committed, flushed)
	TypeSessionEnd  Type = 18 // daemon → agent: SessionEnd (detach, close ring)
	TypeFlush       Type = 19 // daemon → agent: Flush (close partly filled packets)
	TypeFlushed     Type = 20 // agent → daemon: Flushed

	// Forwarder ↔ parent daemon (nesting), on the parent's agent socket: a
	// daemon inside a container forwards the apps it admitted to the
	// daemon of the enclosing container. The parent treats each forwarded
	// app like a directly connected one whose agent messages the
	// forwarder relays (Relay), translating session ids both ways.
	TypeForwardHello  Type = 40 // forwarder → parent: ForwardHello, instead of Hello; answered by Welcome or Error
	TypeForwardApp    Type = 41 // forwarder → parent: ForwardApp, with the app's pidfd
	TypeForwardAnswer Type = 42 // parent → forwarder: ForwardAnswer (accepted, or refused)
	TypeForwardGone   Type = 43 // either way: ForwardGone (app disconnected / dropped by the parent)
	TypeRelay         Type = 44 // either way: Relay, one agent↔daemon message of a forwarded app, with its files

	// Client ↔ daemon.
	TypeRequest  Type = 30 // client → daemon: Request
	TypeResponse Type = 31 // daemon → client: Response
)

var typeNames = map[Type]string{
	TypeError: "error", TypeHello: "hello", TypeWelcome: "welcome", TypeEvents: "events",
	TypeSessionOpen: "session-open", TypeRingReady: "ring-ready", TypeRingIDs: "ring-ids",
	TypeSessionStop: "session-stop", TypeStopped: "stopped", TypeSessionEnd: "session-end",
	TypeForwardHello: "forward-hello", TypeForwardApp: "forward-app", TypeForwardAnswer: "forward-answer",
	TypeForwardGone: "forward-gone", TypeRelay: "relay",
	TypeFlush: "flush", TypeFlushed: "flushed",
	TypeRequest: "request", TypeResponse: "response",
}

func (t Type) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint16(t))
}

// Error is a refusal. Code is one of the Code* constants; Message is for
// people.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Error codes.
const (
	CodeMalformed   = "malformed"
	CodeVersion     = "version"
	CodeUnknownType = "unknown-type"
	CodeRefused     = "refused"   // not allowed (scope, permissions)
	CodeNotFound    = "not-found" // no such session, ...
	CodeInvalid     = "invalid"   // a well-formed request that makes no sense
	CodeInternal    = "internal"
)

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Hello is the agent's first message.
type Hello struct {
	Version int    `json:"version"`
	PID     int    `json:"pid"`  // as the app sees it; recorded, never trusted
	Name    string `json:"name"` // program name
	// Capabilities the agent supports (none yet).
	Capabilities []string `json:"capabilities,omitempty"`
}

// Welcome accepts an agent.
type Welcome struct {
	Version      int      `json:"version"`
	Daemon       string   `json:"daemon"` // a name for logs
	Capabilities []string `json:"capabilities,omitempty"`
	// Sessions is the number of SessionOpen messages that follow at once,
	// for the sessions already started: an agent asked to wait for its
	// daemons (usertrace record) lets the program run only after these.
	Sessions int `json:"sessions"`
}

// Events carries catalog records (catalog.AppendCatalog of some events).
// The agent sends every event it has after Welcome, then each new one.
type Events struct {
	Catalog []byte `json:"catalog"`
}

// Pattern selects events by glob on "provider:name" (path.Match syntax: *,
// ?, [a-z]) and a level threshold: events at Level or more severe. An empty
// Level selects every level.
type Pattern struct {
	Glob    string `json:"glob"`
	Level   string `json:"level,omitempty"`
	Exclude bool   `json:"exclude,omitempty"`
}

// Check reports whether the pattern is well formed.
func (p Pattern) Check() error {
	if _, err := path.Match(p.Glob, ""); err != nil || p.Glob == "" {
		return fmt.Errorf("bad pattern %q: want a glob on provider:name such as 'http:*' or '*'", p.Glob)
	}
	if p.Level != "" {
		if _, err := catalog.ParseLevel(p.Level); err != nil {
			return err
		}
	}
	return nil
}

// Match reports whether the pattern selects e (ignoring Exclude).
func (p Pattern) Match(e *catalog.Event) bool {
	if p.Level != "" {
		l, err := catalog.ParseLevel(p.Level)
		if err != nil || e.Level > l {
			return false
		}
	}
	ok, _ := path.Match(p.Glob, e.FullName())
	return ok
}

// Select reports whether a list of patterns selects e: some pattern that is
// not an exclusion matches it, and no exclusion does.
func Select(ps []Pattern, e *catalog.Event) bool {
	in := false
	for _, p := range ps {
		if p.Match(e) {
			if p.Exclude {
				return false
			}
			in = true
		}
	}
	return in
}

// RingConfig is the shape of a session's rings.
type RingConfig struct {
	Shards    int  `json:"shards"`
	NumSub    int  `json:"num_sub"`
	SubSize   int  `json:"sub_size"`
	Overwrite bool `json:"overwrite,omitempty"`
}

// SessionOpen asks an agent to trace a session: make a ring, attach it to
// the events the patterns select, and answer RingReady. Sent again with new
// patterns when the session's patterns change.
type SessionOpen struct {
	Session  uint64     `json:"session"`
	Name     string     `json:"name"`
	Patterns []Pattern  `json:"patterns"`
	Ring     RingConfig `json:"ring"`
}

// IDMap ties a session-local event id (in the ring's event headers) to the
// event's id in the app's catalog.
type IDMap struct {
	Local   uint32 `json:"local"`
	EventID uint32 `json:"event"`
}

// RingReady hands the daemon a session's ring; the memfd is attached.
type RingReady struct {
	Session uint64  `json:"session"`
	IDs     []IDMap `json:"ids"`
}

// RingIDs reports events attached to a session's ring after RingReady.
type RingIDs struct {
	Session uint64  `json:"session"`
	IDs     []IDMap `json:"ids"`
}

// SessionStop asks the agent to stop writing a session's events and flush
// what is committed.
type SessionStop struct {
	Session uint64 `json:"session"`
}

// Stopped answers SessionStop.
type Stopped struct {
	Session uint64 `json:"session"`
}

// SessionEnd releases a session: the agent detaches and unmaps its ring.
type SessionEnd struct {
	Session uint64 `json:"session"`
}

// Flush asks the agent to close the partly filled packets of a session's
// ring, so that a snapshot includes the newest events; it answers Flushed.
type Flush struct {
	Session uint64 `json:"session"`
}

// Flushed answers Flush.
type Flushed struct {
	Session uint64 `json:"session"`
}

// ForwardHello opens a forwarder's connection to its parent daemon. The
// parent identifies the forwarder from the connection (its pidfd) and
// admits it only if it is in the parent's scope; every app it forwards must
// then lie in the forwarder's own pid-namespace subtree.
type ForwardHello struct {
	Version int    `json:"version"`
	Name    string `json:"name"` // the forwarder's directory, for logs
}

// ForwardApp forwards one app the forwarder admitted. Its pidfd is
// attached; the parent re-verifies it (the app's pid namespace must be the
// forwarder's or nested under it) and answers ForwardAnswer. App is the
// forwarder's id for the app on this connection; Name and HelloPID are what
// the app said (recorded, not trusted). The app's catalog follows as
// Relay(Events).
type ForwardApp struct {
	App      uint64 `json:"app"`
	Name     string `json:"name"`
	HelloPID int    `json:"hello_pid"`
}

// ForwardAnswer accepts (Error nil) or refuses a forwarded app. A refusal
// says only "refused", whatever the reason.
type ForwardAnswer struct {
	App   uint64 `json:"app"`
	Error *Error `json:"error,omitempty"`
}

// ForwardGone ends a forwarded app: from the forwarder, the app
// disconnected; from the parent, the parent dropped it (a bad message).
type ForwardGone struct {
	App uint64 `json:"app"`
}

// Relay carries one agent↔daemon message (Type and its JSON Body) of the
// forwarded app App, with the message's files (a ring memfd). Only
// agent↔daemon types travel in a Relay; session ids in them are the
// parent's, and the forwarder maps them to its own.
type Relay struct {
	App  uint64          `json:"app"`
	Type Type            `json:"type"`
	Body json.RawMessage `json:"body"`
}

// ErrMalformed wraps every decoding failure.
var ErrMalformed = errors.New("malformed message")

// Marshal encodes a message.
func Marshal(t Type, body any) ([]byte, error) {
	js, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", t, err)
	}
	if len(js) > MaxBody {
		return nil, fmt.Errorf("encode %s: body of %d bytes exceeds %d", t, len(js), MaxBody)
	}
	b := make([]byte, HeaderSize, HeaderSize+len(js))
	binary.LittleEndian.PutUint32(b[0:], Magic)
	binary.LittleEndian.PutUint16(b[4:], Version)
	binary.LittleEndian.PutUint16(b[6:], uint16(t))
	binary.LittleEndian.PutUint32(b[8:], uint32(len(js)))
	return append(b, js...), nil
}

// Header is a decoded message header.
type Header struct {
	Version uint16
	Type    Type
	Body    []byte
}

// Parse splits one datagram into header and body. It checks everything that
// can be checked without knowing the type.
func Parse(msg []byte) (Header, error) {
	if len(msg) < HeaderSize {
		return Header{}, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(msg), HeaderSize)
	}
	if m := binary.LittleEndian.Uint32(msg); m != Magic {
		return Header{}, fmt.Errorf("%w: bad magic %#08x", ErrMalformed, m)
	}
	h := Header{
		Version: binary.LittleEndian.Uint16(msg[4:]),
		Type:    Type(binary.LittleEndian.Uint16(msg[6:])),
	}
	n := binary.LittleEndian.Uint32(msg[8:])
	if n > MaxBody {
		return Header{}, fmt.Errorf("%w: body length %d exceeds %d", ErrMalformed, n, MaxBody)
	}
	if int(n) != len(msg)-HeaderSize {
		return Header{}, fmt.Errorf("%w: header says %d body bytes, datagram has %d", ErrMalformed, n, len(msg)-HeaderSize)
	}
	if f := binary.LittleEndian.Uint32(msg[12:]); f != 0 {
		return Header{}, fmt.Errorf("%w: reserved flags %#x set", ErrMalformed, f)
	}
	h.Body = msg[HeaderSize:]
	return h, nil
}

// Decode parses h's JSON body into v.
func (h Header) Decode(v any) error {
	if err := json.Unmarshal(h.Body, v); err != nil {
		return fmt.Errorf("%w: %s body: %v", ErrMalformed, h.Type, err)
	}
	return nil
}
