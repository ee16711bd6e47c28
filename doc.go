// Package usertrace is static instrumentation for Go programs that is enabled
// at run time and consumed by any tracer: in-process callbacks, a user-space
// tracer writing into shared memory, or a kernel tracer.
//
// # Defining and firing events
//
// An event is defined once, at package level, by a provider name, an event
// name and a struct type whose fields are the event's fields:
//
//	type RequestDone struct {
//		Method string
//		Status uint16
//		Took   time.Duration
//	}
//
//	var requestDone = usertrace.NewEvent[RequestDone]("http", "request_done",
//		usertrace.WithLevel(usertrace.LevelInfo))
//
// and fired where it happens:
//
//	requestDone.Emit(RequestDone{Method: r.Method, Status: 200, Took: d})
//
// When no tracer wants the event, Emit costs one atomic load and a branch,
// inlined at the call site. Guard the call with [Event.Enabled] when building
// the value costs something: its arguments are then not evaluated at all.
// When a tracer is attached, Emit encodes the value once, without allocating,
// and hands the bytes to each attached tracer.
//
// A definition mistake (an unsupported field type, a name that is not an
// identifier, the same provider:name defined with different fields) makes
// NewEvent panic at start-up with a message that says what to change, never
// at emit time. [DefineEvent] returns the error instead.
//
// # Tracers
//
// A [Tracer] is anything with a Trace(Record) method. Attach one to an event
// with [Event.Attach], or to events by name through package tracer, which
// also lets a tracer subscribe to the catalog (it is told of every event that
// exists, then of each new one) and ask for a statedump.
//
// # Two ABIs
//
// Whether an event is enabled and what an event looks like are two separate
// ABIs, each usable without the other:
//
//   - package enable: one uint32 word per event in a slab; bit 31 for the
//     kernel (Linux user_events), bits 24–30 for external agents, the low
//     bits count in-process attachments (docs/enable-abi.md);
//   - package catalog: event descriptions (ids, names, levels, typed fields,
//     attributes, source location), their versioned binary encoding and the
//     payload layout (docs/description-abi.md).
package usertrace

import (
	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/internal/plan"
	"github.com/usertrace/usertrace/tracer"
)

// Level is an event's severity, syslog-style: lower is more severe.
type Level = catalog.Level

// The levels, most severe first.
const (
	LevelEmergency = catalog.LevelEmergency
	LevelAlert     = catalog.LevelAlert
	LevelCritical  = catalog.LevelCritical
	LevelError     = catalog.LevelError
	LevelWarning   = catalog.LevelWarning
	LevelNotice    = catalog.LevelNotice
	LevelInfo      = catalog.LevelInfo
	LevelDebug     = catalog.LevelDebug
)

// Record is one fired event as a tracer sees it: its description and its
// encoded payload. It is valid only during the Trace call that receives it.
type Record = catalog.Record

// Tracer receives fired events; see [tracer.Tracer] for the contract.
type Tracer = tracer.Tracer

// TracerFunc adapts a function to [Tracer].
type TracerFunc = tracer.Func

// EnumLabel names one value of an enum type.
type EnumLabel = catalog.EnumLabel

// Enumer is implemented by integer types whose values have names: a field of
// such a type is an enum in the event's description. The labels are read
// once, from the zero value, when the event is defined.
//
//	type Method uint8
//
//	func (Method) TraceEnum() []usertrace.EnumLabel {
//		return []usertrace.EnumLabel{{Value: 0, Label: "GET"}, {Value: 1, Label: "POST"}}
//	}
type Enumer = plan.Enumer
