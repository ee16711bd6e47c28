package userevents

import (
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
}

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
				continue
			}
			var typ string
			switch f.Type.Kind {
			case catalog.String:
				typ = "__rel_loc char[]"
			case catalog.Bytes:
				typ = "__rel_loc u8[]"
			case catalog.Array, catalog.Sequence:
				et, _, ok := scalarType(f.Type.Elem)
				if f.Type.Elem == nil || !ok {
					return fmt.Errorf("field %q of %s: array of %v has no user_events type", fname, e.FullName(), f.Type.Elem)
				}
				typ = "__rel_loc " + et + "[]"
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

// elemSize is the size of one element of an Array or Sequence of t.
func elemSize(t *catalog.Type) int {
	_, n, _ := scalarType(t)
	return n
}

// rewrite lays the payload of r out as user_events wants it (see the top of
// this file) into dst, and returns the length, or false if dst is too small
// or a location does not fit its 16 bits. It does not allocate.
func rewrite(dst []byte, l *layout, r catalog.Record) (int, bool) {
	if l.fixed > len(dst) {
		return 0, false
	}
	fo, do := 0, l.fixed // next fixed byte, next data byte
	var c catalog.Cursor
	c.Reset(r)
	for c.Next() {
		v := c.Value()
		end := c.Offset()
		var data []byte
		nul := false
		switch k := v.Kind(); k {
		case catalog.String:
			data, nul = v.Bytes(), true
		case catalog.Bytes:
			data = v.Bytes()
		case catalog.Array, catalog.Sequence:
			n := v.Len() * elemSize(v.Type().Elem)
			data = r.Payload[end-n : end]
		default:
			n := elemSize(v.Type())
			if fo+n > l.fixed {
				return 0, false
			}
			copy(dst[fo:], r.Payload[end-n:end])
			fo += n
			continue
		}
		size := len(data)
		if nul {
			size++
		}
		off := do - (fo + 4) // from the byte after the location field
		if fo+4 > l.fixed || do+size > len(dst) || off > 0xffff || size > 0xffff {
			return 0, false
		}
		binary.LittleEndian.PutUint32(dst[fo:], uint32(size)<<16|uint32(off))
		fo += 4
		copy(dst[do:], data)
		if nul {
			dst[do+len(data)] = 0
		}
		do += size
	}
	if c.Err() != nil || fo != l.fixed {
		return 0, false
	}
	return do, true
}
