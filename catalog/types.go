// Package catalog is the description ABI of usertrace: what events exist in a
// process, what they are called, and the type of every field, together with
// the byte layout of an event's payload. It is kept apart from the enable ABI
// (package enable): a tracer may read descriptions without ever looking at an
// enable word, and the other way round.
//
// The package has no dependencies beyond the standard library and holds no
// global state, so the library, the agent, the daemon and foreign decoders can
// all import it.
//
// # Rules for extending this ABI
//
//  1. Kind numbers, attribute keys and record tags are never reused or
//     renumbered. New ones are appended.
//  2. Every record in the binary encoding starts with its length, so a decoder
//     skips what it does not understand (see docs/description-abi.md).
//  3. A decoder that meets a field of a kind it does not know keeps the rest
//     of the catalog and marks that event [Event.Opaque]: its payload cannot be
//     laid out, so its records are skipped whole, never guessed at.
//  4. The payload layout of an existing kind never changes. A new layout is a
//     new kind.
//
// # Payload layout
//
// A payload is the event's fields in order, byte-packed (no alignment, no
// padding), little-endian:
//
//	Bool              1 byte, 0 or 1
//	Int8..Uint64      1, 2, 4 or 8 bytes, two's complement
//	Float32, Float64  IEEE 754, 4 or 8 bytes
//	String            UTF-8 bytes followed by one NUL; the string stops at its
//	                  first NUL (an encoder truncates there)
//	Bytes             uint32 length n, then n bytes
//	Duration          int64 nanoseconds
//	Time              int64 nanoseconds since the Unix epoch, UTC
//	Enum              its base integer
//	Array             Len elements of Elem, back to back
//	Sequence          uint32 count n, then n elements of Elem
//	Struct            its fields in order
//
// This is a valid CTF 1.8 layout (integers with 8-bit alignment), so the
// user-space tracer copies payloads into trace packets unchanged.
package catalog

import "fmt"

// Kind is the type code of a field. The numbers are part of the ABI.
type Kind uint8

const (
	KindInvalid Kind = iota
	Bool
	Int8
	Int16
	Int32
	Int64
	Uint8
	Uint16
	Uint32
	Uint64
	Float32
	Float64
	String
	Bytes
	Duration
	Time
	Enum
	Array
	Sequence
	Struct
	kindEnd // first unknown kind
)

var kindNames = [...]string{
	KindInvalid: "invalid",
	Bool:        "bool",
	Int8:        "int8",
	Int16:       "int16",
	Int32:       "int32",
	Int64:       "int64",
	Uint8:       "uint8",
	Uint16:      "uint16",
	Uint32:      "uint32",
	Uint64:      "uint64",
	Float32:     "float32",
	Float64:     "float64",
	String:      "string",
	Bytes:       "bytes",
	Duration:    "duration",
	Time:        "time",
	Enum:        "enum",
	Array:       "array",
	Sequence:    "sequence",
	Struct:      "struct",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Known reports whether this version of the package knows the kind.
func (k Kind) Known() bool { return k > KindInvalid && k < kindEnd }

// IsInteger reports whether k is one of the integer kinds.
func (k Kind) IsInteger() bool { return k >= Int8 && k <= Uint64 }

// IsSigned reports whether k is a signed integer kind (or a kind stored as
// one: Duration, Time).
func (k Kind) IsSigned() bool {
	return (k >= Int8 && k <= Int64) || k == Duration || k == Time
}

// IsScalar reports whether k is fixed-size and holds no other type.
func (k Kind) IsScalar() bool {
	return (k >= Bool && k <= Float64) || k == Duration || k == Time
}

// Size returns the encoded size of a scalar kind, or 0 for a kind whose size
// depends on its type or value.
func (k Kind) Size() int {
	switch k {
	case Bool, Int8, Uint8:
		return 1
	case Int16, Uint16:
		return 2
	case Int32, Uint32, Float32:
		return 4
	case Int64, Uint64, Float64, Duration, Time:
		return 8
	}
	return 0
}

// Type describes the type of a field.
type Type struct {
	Kind Kind
	// Elem is the element type of an Array or Sequence, and the base integer
	// type of an Enum.
	Elem *Type
	// Len is the number of elements of an Array.
	Len uint32
	// Fields are the members of a Struct.
	Fields []Field
	// Labels name the values of an Enum.
	Labels []EnumLabel
	// RawKind keeps the kind number a decoder did not know (Kind is then
	// KindInvalid).
	RawKind uint8
}

// EnumLabel names one value of an enum. Value holds the bits of the base
// integer: read it as uint64 when the base kind is unsigned.
type EnumLabel struct {
	Value int64
	Label string
}

// Field is one named member of an event or struct.
type Field struct {
	Name string
	Type Type
}

// Level is an event's severity, syslog-style: lower is more severe.
type Level uint8

const (
	LevelEmergency Level = iota
	LevelAlert
	LevelCritical
	LevelError
	LevelWarning
	LevelNotice
	LevelInfo
	LevelDebug
)

var levelNames = [...]string{"emergency", "alert", "critical", "error", "warning", "notice", "info", "debug"}

func (l Level) String() string {
	if int(l) < len(levelNames) {
		return levelNames[l]
	}
	return fmt.Sprintf("level(%d)", uint8(l))
}

// ParseLevel reads a level name as printed by [Level.String].
func ParseLevel(s string) (Level, error) {
	for i, n := range levelNames {
		if n == s {
			return Level(i), nil
		}
	}
	return 0, fmt.Errorf("catalog: unknown level %q (want one of emergency, alert, critical, error, warning, notice, info, debug)", s)
}

// Attr is a key/value attribute attached to an event description.
type Attr struct {
	Key, Value string
}

// Event describes one event of a process.
type Event struct {
	// ID is the event's numeric id, stable for the life of the process. It is
	// the same number as the event's enable id (package enable).
	ID       uint32
	Provider string
	Name     string
	Level    Level
	Fields   []Field
	Attrs    []Attr
	File     string // source file of the definition
	Line     uint32 // source line of the definition
	// Opaque is set by a decoder that met a field kind it does not know: the
	// payload of this event cannot be laid out and must be skipped whole.
	Opaque bool
}

// FullName returns "provider:name".
func (e *Event) FullName() string { return e.Provider + ":" + e.Name }
