package catalog

// Record is one fired event as a tracer receives it: the description and the
// encoded payload (layout in the package comment).
//
// A Record handed to a tracer is only valid during that call: its Payload may
// live on the emitting goroutine's stack. Call [Record.Clone] to keep it.
type Record struct {
	Event   *Event
	Payload []byte
}

// Clone returns a copy of r whose payload is owned by the caller.
func (r Record) Clone() Record {
	return Record{Event: r.Event, Payload: append([]byte(nil), r.Payload...)}
}
