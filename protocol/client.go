package protocol

// Request is a client's command to the daemon (TypeRequest). Op is one of the
// Op* constants; the other fields are the op's arguments.
type Request struct {
	Op      string `json:"op"`
	Session string `json:"session,omitempty"`
	// Create: the trace directory (default: a new directory under the
	// daemon's output root) and the ring shape (zero: defaults).
	Output string     `json:"output,omitempty"`
	Ring   RingConfig `json:"ring,omitempty"`
	// Enable, disable: which events.
	Pattern Pattern `json:"pattern,omitempty"`
}

// Client operations.
const (
	OpCreate   = "create"
	OpEnable   = "enable"
	OpDisable  = "disable"
	OpStart    = "start"
	OpStop     = "stop"
	OpDestroy  = "destroy"
	OpList     = "list"   // events of the connected apps
	OpStatus   = "status" // sessions and apps
	OpSnapshot = "snapshot"
)

// Response answers a Request (TypeResponse). Error is set when the request
// failed; otherwise the fields the op fills are.
type Response struct {
	Error    *Error          `json:"error,omitempty"`
	Session  *SessionStatus  `json:"session,omitempty"`
	Sessions []SessionStatus `json:"sessions,omitempty"`
	Apps     []AppStatus     `json:"apps,omitempty"`
	Events   []EventInfo     `json:"events,omitempty"`
	Path     string          `json:"path,omitempty"` // snapshot: where it was written
}

// SessionStatus describes a session.
type SessionStatus struct {
	Name      string     `json:"name"`
	State     string     `json:"state"` // created, started, stopped
	Output    string     `json:"output"`
	Patterns  []Pattern  `json:"patterns"`
	Ring      RingConfig `json:"ring"`
	Apps      int        `json:"apps"`
	Packets   uint64     `json:"packets"`
	Bytes     uint64     `json:"bytes"`
	Events    uint64     `json:"events"`
	Discarded uint64     `json:"discarded"`
}

// AppStatus describes a connected app. PID is the daemon's view of the
// app's pid (from the connection, not from what the app said).
type AppStatus struct {
	PID      int    `json:"pid"`
	Name     string `json:"name"`
	Events   int    `json:"events"`
	Sessions int    `json:"sessions"`
	// Depth is how many pid namespaces below the daemon's the app lives.
	Depth int `json:"depth"`
	// Namespaces are the app's namespace ids (NS_GET_ID), keyed pid, mnt,
	// net, user, cgroup: they tell containers apart.
	Namespaces map[string]uint64 `json:"namespaces,omitempty"`
}

// EventInfo is one event of one app, for list.
type EventInfo struct {
	PID      int    `json:"pid"`
	App      string `json:"app"`
	ID       uint32 `json:"id"`
	Provider string `json:"provider"`
	Name     string `json:"name"`
	Level    string `json:"level"`
	Fields   string `json:"fields"`
}
