package catalog

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"time"
	"unsafe"
)

// This file reads payloads (layout in the package comment) without
// allocating and without trusting them: a payload may come from another
// process, so every length is checked against the bytes that are there and
// a mismatch is reported as ErrCorrupt, never a panic.

// Value is one field value read from a payload: a view of the payload bytes
// and the value's type. It is valid only as long as the payload is. The zero
// Value has kind KindInvalid.
//
// The accessors never panic: one called on a value of another kind returns
// the zero value of its result.
type Value struct {
	t *Type
	b []byte // the value's bytes: a String without its NUL, the data of Bytes, the elements of an Array or Sequence
	n uint32 // number of elements of an Array or Sequence
}

// Kind returns the value's kind.
func (v Value) Kind() Kind {
	if v.t == nil {
		return KindInvalid
	}
	return v.t.Kind
}

// Type returns the value's type, nil for the zero Value. Do not modify it.
func (v Value) Type() *Type { return v.t }

// intKind is the kind the bytes are stored as: the base of an Enum, or the
// value's own kind.
func (v Value) intKind() Kind {
	k := v.Kind()
	if k == Enum {
		return v.t.Elem.Kind // elemSize checked it when the value was read
	}
	return k
}

// bits returns the 64 bits of an integer-like value, sign-extended for signed
// kinds, and whether the value is integer-like.
func (v Value) bits() (uint64, bool) {
	b := v.b
	switch v.intKind() {
	case Bool, Uint8:
		return uint64(b[0]), true
	case Int8:
		return uint64(int64(int8(b[0]))), true
	case Uint16:
		return uint64(binary.LittleEndian.Uint16(b)), true
	case Int16:
		return uint64(int64(int16(binary.LittleEndian.Uint16(b)))), true
	case Uint32:
		return uint64(binary.LittleEndian.Uint32(b)), true
	case Int32:
		return uint64(int64(int32(binary.LittleEndian.Uint32(b)))), true
	case Uint64, Int64, Duration, Time:
		return binary.LittleEndian.Uint64(b), true
	}
	return 0, false
}

// Bool returns the value of a Bool (any non-zero byte reads as true).
func (v Value) Bool() bool {
	return v.Kind() == Bool && v.b[0] != 0
}

// Int64 returns the value of an integer, Enum, Duration or Time (its
// nanoseconds), or Bool (0 or 1). An unsigned value above MaxInt64 wraps.
func (v Value) Int64() int64 {
	x, _ := v.bits()
	return int64(x)
}

// Uint64 returns the value of an integer, Enum, Duration, Time or Bool as
// Int64 does, converted to uint64: a negative value wraps.
func (v Value) Uint64() uint64 {
	x, _ := v.bits()
	return x
}

// Float64 returns the value of a Float32 or Float64.
func (v Value) Float64() float64 {
	switch v.Kind() {
	case Float32:
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(v.b)))
	case Float64:
		return math.Float64frombits(binary.LittleEndian.Uint64(v.b))
	}
	return 0
}

// Str returns the value of a String, or the data of Bytes, without copying:
// the string shares the payload's memory, so it is valid only while the
// payload is and must not outlive it (copy it with strings.Clone to keep
// it).
func (v Value) Str() string {
	k := v.Kind()
	if (k != String && k != Bytes) || len(v.b) == 0 {
		return ""
	}
	return unsafe.String(&v.b[0], len(v.b))
}

// Bytes returns the data of a Bytes value, or the bytes of a String (without
// its NUL), as a view of the payload.
func (v Value) Bytes() []byte {
	k := v.Kind()
	if k != String && k != Bytes {
		return nil
	}
	return v.b
}

// Duration returns the value of a Duration.
func (v Value) Duration() time.Duration {
	if v.Kind() != Duration {
		return 0
	}
	return time.Duration(v.Int64())
}

// Time returns the value of a Time, in UTC.
func (v Value) Time() time.Time {
	if v.Kind() != Time {
		return time.Time{}
	}
	return time.Unix(0, v.Int64()).UTC()
}

// Label returns the label of an Enum value, or "" if its value has none (or
// v is not an Enum). With several labels for one value, the first wins.
func (v Value) Label() string {
	if v.Kind() != Enum {
		return ""
	}
	x, _ := v.bits()
	for i := range v.t.Labels {
		if uint64(v.t.Labels[i].Value) == x {
			return v.t.Labels[i].Label
		}
	}
	return ""
}

// Len returns the number of elements of an Array or Sequence, 0 for other
// kinds.
func (v Value) Len() int {
	if k := v.Kind(); k != Array && k != Sequence {
		return 0
	}
	return int(v.n)
}

// Index returns element i of an Array or Sequence, or the zero Value if i is
// out of range.
func (v Value) Index(i int) Value {
	if i < 0 || i >= v.Len() {
		return Value{}
	}
	es := elemSize(v.t.Elem) // non-zero: checked when v was read
	return Value{t: v.t.Elem, b: v.b[i*es : (i+1)*es]}
}

// Field returns the member of a Struct value with the given name. Values of
// the Cursor are never Structs (it descends into them); [Record.Field] may
// return one.
func (v Value) Field(name string) (Value, bool) {
	if v.Kind() != Struct {
		return Value{}, false
	}
	return lookup(v.t.Fields, v.b, name, 1)
}

// Field returns the value of the top-level field with the given name, and
// false if there is none or the payload is too corrupt to reach it. A Struct
// field is returned as one Value; read its members with [Value.Field].
func (r Record) Field(name string) (Value, bool) {
	if r.Event == nil || r.Event.Opaque {
		return Value{}, false
	}
	return lookup(r.Event.Fields, r.Payload, name, 0)
}

func lookup(fs []Field, p []byte, name string, depth int) (Value, bool) {
	off := 0
	for i := range fs {
		v, next, bad := read(&fs[i].Type, p, off, depth)
		if bad != "" {
			return Value{}, false
		}
		if fs[i].Name == name {
			return v, true
		}
		off = next
	}
	return Value{}, false
}

// elemSize returns the size of an element of an Array or Sequence of t, or 0
// if t cannot be one.
func elemSize(t *Type) int {
	if t == nil {
		return 0
	}
	if t.Kind == Enum {
		if t.Elem == nil || !t.Elem.Kind.IsInteger() {
			return 0
		}
		return t.Elem.Kind.Size()
	}
	return t.Kind.Size()
}

// read reads the value of type t at p[off:] and returns it with the offset
// that follows it. On failure it returns a fixed description of the problem
// (so that reading allocates nothing) and the offset of the value at fault.
func read(t *Type, p []byte, off, depth int) (v Value, next int, bad string) {
	start := off
	left := uint64(len(p) - off)
	switch t.Kind {
	case Bool, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64, Float32, Float64, Duration, Time, Enum:
		n := elemSize(t)
		if n == 0 {
			return Value{}, off, "enum without an integer base type"
		}
		if uint64(n) > left {
			return Value{}, off, "value runs past the end of the payload"
		}
		return Value{t: t, b: p[off : off+n]}, off + n, ""
	case String:
		i := bytes.IndexByte(p[off:], 0)
		if i < 0 {
			return Value{}, off, "string without its NUL terminator"
		}
		return Value{t: t, b: p[off : off+i]}, off + i + 1, ""
	case Bytes:
		if left < 4 {
			return Value{}, off, "bytes length runs past the end of the payload"
		}
		n := binary.LittleEndian.Uint32(p[off:])
		if uint64(n) > left-4 {
			return Value{}, off, "bytes run past the end of the payload"
		}
		off += 4
		return Value{t: t, b: p[off : off+int(n)]}, off + int(n), ""
	case Array, Sequence:
		es := elemSize(t.Elem)
		if es == 0 {
			return Value{}, off, "array of a type without a fixed size"
		}
		n := t.Len
		if t.Kind == Sequence {
			if left < 4 {
				return Value{}, off, "sequence count runs past the end of the payload"
			}
			n = binary.LittleEndian.Uint32(p[off:])
			off += 4
			left -= 4
		}
		size := uint64(n) * uint64(es) // no overflow: both below 2^32
		if size > left {
			return Value{}, start, "array runs past the end of the payload"
		}
		return Value{t: t, b: p[off : off+int(size)], n: n}, off + int(size), ""
	case Struct:
		if depth >= MaxDepth {
			return Value{}, off, "structs nested too deep"
		}
		for i := range t.Fields {
			_, off, bad = read(&t.Fields[i].Type, p, off, depth+1)
			if bad != "" {
				return Value{}, off, bad
			}
		}
		return Value{t: t, b: p[start:off]}, off, ""
	}
	return Value{}, off, "type of unknown kind"
}

// Cursor reads the fields of a [Record] one leaf at a time, without
// allocating. Structs are flattened: the Cursor descends into them and
// yields their members, whose [Cursor.AppendPath] is "parent.member". Arrays
// and sequences are yielded as one Value; read their elements with
// [Value.Len] and [Value.Index].
//
//	var c catalog.Cursor
//	c.Reset(r)
//	for c.Next() {
//		use(c.Field().Name, c.Value())
//	}
//	if err := c.Err(); err != nil { ... }
//
// Values lent by a Cursor view the record's payload and are valid as long as
// it is. The payload is not trusted: when it does not match the description
// (too short, too long, a string without its NUL, a length past the end),
// Next returns false and Err returns an error wrapping [ErrCorrupt]. The
// fields before the fault have been yielded already.
//
// A Cursor is a value type of a few hundred bytes; the zero Cursor yields
// nothing. Reuse one with Reset.
type Cursor struct {
	p     []byte
	off   int
	depth int                 // index of the innermost frame in stack
	stack [MaxDepth + 1]frame // stack[0] is the event's fields
	field *Field
	val   Value
	err   error
	ev    *Event
}

type frame struct {
	fields []Field
	i      int // next field to read; fields[i-1] is the current one
}

// Reset makes c read r from its first field.
func (c *Cursor) Reset(r Record) {
	*c = Cursor{p: r.Payload, ev: r.Event}
	if r.Event == nil {
		c.err = fmt.Errorf("read payload: record without an event: %w", ErrCorrupt)
		return
	}
	if r.Event.Opaque {
		c.err = fmt.Errorf("read payload of %s: the event is opaque (a field of a kind this version does not know), its payload cannot be laid out: %w", r.Event.FullName(), ErrCorrupt)
		return
	}
	c.stack[0].fields = r.Event.Fields
}

// Next moves to the next leaf field and reports whether there is one. It
// returns false at the end of the payload, or at the first fault (see Err).
func (c *Cursor) Next() bool {
	if c.err != nil || c.ev == nil {
		return false
	}
	for {
		f := &c.stack[c.depth]
		if f.i >= len(f.fields) {
			if c.depth == 0 {
				c.field, c.val = nil, Value{}
				if c.off != len(c.p) {
					c.fail(c.off, "bytes left after the last field", false)
				}
				c.ev = nil // done
				return false
			}
			c.depth--
			continue
		}
		fl := &f.fields[f.i]
		f.i++
		c.field = fl
		if fl.Type.Kind == Struct {
			if c.depth+1 >= len(c.stack) {
				c.fail(c.off, "structs nested too deep", true)
				return false
			}
			c.depth++
			c.stack[c.depth] = frame{fields: fl.Type.Fields}
			continue
		}
		v, next, bad := read(&fl.Type, c.p, c.off, c.depth)
		if bad != "" {
			c.fail(next, bad, true)
			return false
		}
		c.val, c.off = v, next
		return true
	}
}

// fail records a fault at byte at of the payload, in the current field if
// inField. Only corrupt payloads pay for the allocation.
func (c *Cursor) fail(at int, what string, inField bool) {
	name := c.ev.FullName()
	var path []byte
	if inField {
		path = c.appendPath(nil)
	}
	c.field, c.val, c.ev = nil, Value{}, nil
	if len(path) == 0 {
		c.err = fmt.Errorf("read payload of %s: byte %d of %d: %s: %w", name, at, len(c.p), what, ErrCorrupt)
		return
	}
	c.err = fmt.Errorf("read payload of %s: field %s at byte %d of %d: %s: %w", name, path, at, len(c.p), what, ErrCorrupt)
}

// Err returns the fault that stopped Next, or nil. It wraps [ErrCorrupt].
func (c *Cursor) Err() error { return c.err }

// Field returns the description of the current leaf field. Do not modify
// it.
func (c *Cursor) Field() *Field { return c.field }

// Value returns the value of the current leaf field.
func (c *Cursor) Value() Value { return c.val }

// Depth returns how many structs enclose the current field: 0 for a field
// of the event itself.
func (c *Cursor) Depth() int { return c.depth }

// Offset returns the offset in the payload of the byte after the current
// field.
func (c *Cursor) Offset() int { return c.off }

// AppendPath appends the dotted path of the current field to b, such as
// "req.method" for the member method of the struct field req.
func (c *Cursor) AppendPath(b []byte) []byte {
	if c.field == nil {
		return b
	}
	return c.appendPath(b)
}

func (c *Cursor) appendPath(b []byte) []byte {
	for d := 0; d <= c.depth; d++ {
		f := &c.stack[d]
		if f.i == 0 || f.i > len(f.fields) {
			break
		}
		if d > 0 {
			b = append(b, '.')
		}
		b = append(b, f.fields[f.i-1].Name...)
	}
	return b
}

// ValidatePayload checks that p is a well-formed payload of e: every length
// within bounds, every string NUL-terminated, every Bool 0 or 1, and no
// byte left over. It returns nil or an error wrapping [ErrCorrupt] that says
// which field and which byte. A payload that passes is read by a [Cursor]
// without error, and re-encoding its values gives p back.
func ValidatePayload(e *Event, p []byte) error {
	var c Cursor
	c.Reset(Record{Event: e, Payload: p})
	for c.Next() {
		v := c.Value()
		switch v.Kind() {
		case Bool:
			if v.b[0] > 1 {
				c.fail(c.off-1, "bool neither 0 nor 1", true)
			}
		case Array, Sequence:
			if v.t.Elem.Kind == Bool {
				for i, x := range v.b {
					if x > 1 {
						c.fail(c.off-len(v.b)+i, "bool neither 0 nor 1", true)
						break
					}
				}
			}
		}
	}
	return c.Err()
}
