package userevents

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/usertrace/usertrace/catalog"
)

// The user_events format of an event, generated from its catalog
// description (docs/kernel-tracers.md has the table):
//
//	Bool                     u8
//	Int8..Int64              s8, s16, s32, s64
//	Uint8..Uint64            u8, u16, u32, u64
//	Float32, Float64         u32, u64 (the IEEE 754 bits: ftrace has no floats)
//	Duration, Time           s64 (nanoseconds; since the Unix epoch for Time)
//	Enum                     its base integer type
//	String                   __rel_loc char[]  (the data keeps its NUL)
//	Bytes                    __rel_loc u8[]
//	Array, Sequence of E     __rel_loc E[]     (E as above; Bool as u8)
//	Struct                   its members, flattened as parent_member
//
// Scalars keep their place and bytes. A __rel_loc field is a u32,
// size<<16 | offset, where offset counts from the byte after the field; its
// data goes after the last fixed field, in field order. Our payload has
// strings inline and NUL-terminated, and Bytes and Sequences inline after a
// u32 count, so an event with such fields is rewritten on each write (into
// a stack buffer, see rewrite); an event of scalars only is written as is.

// layout is what a registration needs to write an event.
type layout struct {
	desc  string // "name field; field", without the NUL
	fixed int    // bytes of the fixed part
	dyn   bool   // some field is a __rel_loc: payloads are rewritten
	ops   []op   // the leaf fields in payload order, structs flattened
}

// op is how rewrite moves one leaf field.
type op struct {
	kind opKind
	n    int // opScalar, opArray: bytes; opCounted: bytes per element
}

type opKind uint8

const (
	opScalar  opKind = iota // n bytes, copied in place
	opString                // NUL-terminated, moved with its NUL
	opCounted               // u32 count then count elements of n bytes (Bytes: n = 1), moved without the count
	opArray                 // n bytes, moved
)

// scalarType returns the user_events type of a fixed-size kind.
func scalarType(t *catalog.Type) (string, int, bool) {
	k := t.Kind
	if k == catalog.Enum {
		if t.Elem == nil || !t.Elem.Kind.IsInteger() {
			return "", 0, false
		}
		k = t.Elem.Kind
	}
	switch k {
	case catalog.Bool, catalog.Uint8:
		return "u8", 1, true
	case catalog.Int8:
		return "s8", 1, true
	case catalog.Int16:
		return "s16", 2, true
	case catalog.Uint16:
		return "u16", 2, true
	case catalog.Int32:
		return "s32", 4, true
	case catalog.Uint32, catalog.Float32:
		return "u32", 4, true
	case catalog.Int64, catalog.Duration, catalog.Time:
		return "s64", 8, true
	case catalog.Uint64, catalog.Float64:
		return "u64", 8, true
	}
	return "", 0, false
}

// validName reports whether s is a C identifier, which is what ftrace
// filters and tools expect of event and field names.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

// DefaultName is the user_events name of an event when [Config.Name] is
// nil: "provider_name", with every byte that is not a letter, digit or
// underscore replaced by an underscore.
func DefaultName(e *catalog.Event) string {
	b := []byte(e.Provider + "_" + e.Name)
	for i, c := range b {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	if len(b) > 0 && b[0] >= '0' && b[0] <= '9' {
		return "_" + string(b)
	}
	return string(b)
}

// makeLayout builds the user_events description of e under name.
func makeLayout(name string, e *catalog.Event) (*layout, error) {
	if !validName(name) {
		return nil, fmt.Errorf("user_events name %q of %s: want letters, digits and underscores", name, e.FullName())
	}
	if e.Opaque {
		return nil, fmt.Errorf("%s is opaque (a field of a kind this version does not know)", e.FullName())
	}
	l := &layout{}
	var fields []string
	seen := map[string]bool{}
	var walk func(prefix string, fs []catalog.Field) error
	walk = func(prefix string, fs []catalog.Field) error {
		for i := range fs {
			f := &fs[i]
			fname := prefix + f.Name
			if f.Type.Kind == catalog.Struct {
				if err := walk(fname+"_", f.Type.Fields); err != nil {
					return err
				}
				continue
			}
			if !validName(fname) {
				return fmt.Errorf("field %q of %s: want letters, digits and underscores", fname, e.FullName())
			}
			if seen[fname] {
				return fmt.Errorf("field %q of %s appears twice once structs are flattened; rename one", fname, e.FullName())
			}
			seen[fname] = true
			if typ, size, ok := scalarType(&f.Type); ok {
				fields = append(fields, typ+" "+fname)
				l.fixed += size
				l.ops = append(l.ops, op{opScalar, size})
				continue
			}
			var typ string
			switch f.Type.Kind {
			case catalog.String:
				typ = "__rel_loc char[]"
				l.ops = append(l.ops, op{opString, 0})
			case catalog.Bytes:
				typ = "__rel_loc u8[]"
				l.ops = append(l.ops, op{opCounted, 1})
			case catalog.Array, catalog.Sequence:
				if f.Type.Elem == nil {
					return fmt.Errorf("field %q of %s: array without an element type", fname, e.FullName())
				}
				et, es, ok := scalarType(f.Type.Elem)
				if !ok {
					return fmt.Errorf("field %q of %s: array of %v has no user_events type", fname, e.FullName(), f.Type.Elem.Kind)
				}
				typ = "__rel_loc " + et + "[]"
				if f.Type.Kind == catalog.Array {
					l.ops = append(l.ops, op{opArray, es * int(f.Type.Len)})
				} else {
					l.ops = append(l.ops, op{opCounted, es})
				}
			default:
				return fmt.Errorf("field %q of %s: kind %v has no user_events type", fname, e.FullName(), f.Type.Kind)
			}
			fields = append(fields, typ+" "+fname)
			l.fixed += 4
			l.dyn = true
		}
		return nil
	}
	if err := walk("", e.Fields); err != nil {
		return nil, err
	}
	l.desc = name
	if len(fields) > 0 {
		l.desc += " " + strings.Join(fields, "; ")
	}
	if len(l.desc)+1 > maxEventDesc {
		return nil, fmt.Errorf("user_events description of %s is %d bytes, the kernel takes at most %d: %q", e.FullName(), len(l.desc), maxEventDesc-1, l.desc)
	}
	return l, nil
}

// rewrite lays the payload p out as user_events wants it (see the top of
// this file) into dst, and returns the length, or false if dst is too small,
// a location does not fit its 16 bits, or p does not match the description
// (it is bounds-checked like any payload; the emitter made it, but a tracer
// does not trust what it is handed). It does not allocate.
func rewrite(dst []byte, l *layout, p []byte) (int, bool) {
	if l.fixed > len(dst) {
		return 0, false
	}
	off := 0             // next payload byte
	fo, do := 0, l.fixed // next fixed byte, next data byte
	for _, o := range l.ops {
		var data []byte
		switch o.kind {
		case opScalar:
			if o.n > len(p)-off || fo+o.n > l.fixed {
				return 0, false
			}
			copy(dst[fo:fo+o.n], p[off:off+o.n])
			off += o.n
			fo += o.n
			continue
		case opString:
			i := bytes.IndexByte(p[off:], 0)
			if i < 0 {
				return 0, false
			}
			data = p[off : off+i+1] // with its NUL
			off += i + 1
		case opCounted:
			if len(p)-off < 4 {
				return 0, false
			}
			n := uint64(binary.LittleEndian.Uint32(p[off:])) * uint64(o.n)
			off += 4
			if n > uint64(len(p)-off) {
				return 0, false
			}
			data = p[off : off+int(n)]
			off += int(n)
		case opArray:
			if o.n > len(p)-off {
				return 0, false
			}
			data = p[off : off+o.n]
			off += o.n
		}
		size := len(data)
		rel := do - (fo + 4) // from the byte after the location field
		if fo+4 > l.fixed || size > len(dst)-do || rel > 0xffff || size > 0xffff {
			return 0, false
		}
		binary.LittleEndian.PutUint32(dst[fo:], uint32(size)<<16|uint32(rel))
		fo += 4
		do += copy(dst[do:], data)
	}
	if off != len(p) || fo != l.fixed {
		return 0, false
	}
	return do, true
}
