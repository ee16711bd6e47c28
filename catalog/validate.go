package catalog

import (
	"errors"
	"fmt"
)

// Limits that keep descriptions and payloads tractable for every decoder.
const (
	MaxNameLen   = 128 // provider, event and field names
	MaxFields    = 256 // fields in one event or struct
	MaxDepth     = 8   // struct and array nesting
	MaxArrayLen  = 1 << 16
	MaxAttrs     = 64
	MaxAttrLen   = 1024 // attribute keys and values
	MaxEnumLabel = 1024 // labels in one enum
)

// ValidName reports whether s is an identifier: a letter or '_', then
// letters, digits or '_', at most MaxNameLen bytes.
func ValidName(s string) bool {
	if s == "" || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// Validate checks that the description is one every decoder accepts, and
// says what to change when it is not.
func (e *Event) Validate() error {
	if !ValidName(e.Provider) {
		return fmt.Errorf("define %s: provider %q is not an identifier (letters, digits and _, not starting with a digit, at most %d bytes)", e.FullName(), e.Provider, MaxNameLen)
	}
	if !ValidName(e.Name) {
		return fmt.Errorf("define %s: event name %q is not an identifier (letters, digits and _, not starting with a digit, at most %d bytes)", e.FullName(), e.Name, MaxNameLen)
	}
	if e.Level > LevelDebug {
		return fmt.Errorf("define %s: level %d out of range (0 emergency .. 7 debug)", e.FullName(), e.Level)
	}
	if len(e.Attrs) > MaxAttrs {
		return fmt.Errorf("define %s: %d attributes, at most %d", e.FullName(), len(e.Attrs), MaxAttrs)
	}
	for _, a := range e.Attrs {
		if a.Key == "" || len(a.Key) > MaxAttrLen || len(a.Value) > MaxAttrLen {
			return fmt.Errorf("define %s: attribute %q: keys must be non-empty and keys and values at most %d bytes", e.FullName(), a.Key, MaxAttrLen)
		}
	}
	if err := validateFields(e.Fields, 0); err != nil {
		return fmt.Errorf("define %s: %w", e.FullName(), err)
	}
	return nil
}

func validateFields(fs []Field, depth int) error {
	if len(fs) > MaxFields {
		return fmt.Errorf("%d fields, at most %d", len(fs), MaxFields)
	}
	seen := make(map[string]bool, len(fs))
	for _, f := range fs {
		if !ValidName(f.Name) {
			return fmt.Errorf("field name %q is not an identifier (letters, digits and _, not starting with a digit)", f.Name)
		}
		if seen[f.Name] {
			return fmt.Errorf("field %q appears twice", f.Name)
		}
		seen[f.Name] = true
		if err := validateType(&f.Type, depth); err != nil {
			return fmt.Errorf("field %s: %w", f.Name, err)
		}
	}
	return nil
}

var errDepth = fmt.Errorf("types nested more than %d deep", MaxDepth)

func validateType(t *Type, depth int) error {
	if depth > MaxDepth {
		return errDepth
	}
	switch t.Kind {
	case Bool, Int8, Int16, Int32, Int64, Uint8, Uint16, Uint32, Uint64,
		Float32, Float64, String, Bytes, Duration, Time:
		return nil
	case Enum:
		if t.Elem == nil || !t.Elem.Kind.IsInteger() {
			return errors.New("an enum needs an integer base type")
		}
		if len(t.Labels) > MaxEnumLabel {
			return fmt.Errorf("%d enum labels, at most %d", len(t.Labels), MaxEnumLabel)
		}
		for _, l := range t.Labels {
			if l.Label == "" || len(l.Label) > MaxNameLen {
				return fmt.Errorf("enum label %q must be 1 to %d bytes", l.Label, MaxNameLen)
			}
		}
		return nil
	case Array, Sequence:
		if t.Elem == nil {
			return fmt.Errorf("%s without an element type", t.Kind)
		}
		if t.Kind == Array && (t.Len == 0 || t.Len > MaxArrayLen) {
			return fmt.Errorf("array length %d out of range 1..%d", t.Len, MaxArrayLen)
		}
		if !t.Elem.Kind.IsScalar() && t.Elem.Kind != Enum {
			return fmt.Errorf("arrays hold scalars (bool, integers, floats, durations, times, enums), not %s", t.Elem.Kind)
		}
		return validateType(t.Elem, depth+1)
	case Struct:
		if len(t.Fields) == 0 {
			return errors.New("a struct needs at least one field")
		}
		return validateFields(t.Fields, depth+1)
	}
	return fmt.Errorf("unsupported kind %s", t.Kind)
}
