// Package plan turns a Go struct type into an event schema (catalog fields)
// and a field plan: a flat list of copy operations that encodes a value of
// that type into the payload layout of package catalog without reflection.
//
// Compile runs once, when an event is defined, and does all the reflection.
// Encode runs on every enabled event: it walks the plan with unsafe pointer
// arithmetic over the value's memory, so it must only ever be given a pointer
// to a value of the type the plan was compiled for (the generic root package
// guarantees that).
package plan

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"
	"unsafe"

	"github.com/usertrace/usertrace/catalog"
)

// Enumer is implemented by integer types whose values have names. The labels
// are read once, from the zero value, when an event using the type is defined.
type Enumer interface {
	TraceEnum() []catalog.EnumLabel
}

type opKind uint8

const (
	opCopy     opKind = iota // size bytes of raw little-endian memory
	opString                 // string, NUL-terminated, cut at the first NUL
	opBytes                  // []byte: uint32 length + bytes
	opSeq                    // []scalar: uint32 count + raw elements
	opTime                   // time.Time: int64 Unix nanoseconds
	opTimeArr                // [n]time.Time
	opTimeSeq                // []time.Time
	opBoolNorm               // bool read as byte, written as 0 or 1
)

type op struct {
	kind opKind
	off  uintptr // offset of the Go value in the struct
	size uint32  // opCopy: bytes; opSeq: element size; opTimeArr: element count
}

// Plan is a compiled schema.
type Plan struct {
	Fields []catalog.Field
	ops    []op
	fixed  int // bytes every payload has, whatever the values
}

// FixedSize returns the number of payload bytes that do not depend on the
// value (all of them for a struct of scalars).
func (p *Plan) FixedSize() int { return p.fixed }

var (
	durationType = reflect.TypeFor[time.Duration]()
	timeType     = reflect.TypeFor[time.Time]()
	enumerType   = reflect.TypeFor[Enumer]()
)

// isLittleEndian: raw copies of integer memory are the payload layout only on
// little-endian machines; elsewhere Compile refuses to use them.
var isLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

// Compile builds the plan for struct type t.
func Compile(t reflect.Type) (*Plan, error) {
	if t.Kind() != reflect.Struct {
		return nil, fmt.Errorf("the event type must be a struct, not %s: wrap the value in a struct whose fields name it", t)
	}
	if !isLittleEndian {
		return nil, fmt.Errorf("usertrace supports little-endian machines only")
	}
	c := compiler{}
	fields, err := c.structFields(t, 0, 0)
	if err != nil {
		return nil, err
	}
	return &Plan{Fields: fields, ops: mergeCopies(c.ops), fixed: c.fixed}, nil
}

type compiler struct {
	ops   []op
	fixed int
}

// FieldName derives the catalog name of a Go struct field: the `trace` tag if
// there is one, else the Go name in snake_case ("HTTPStatus" → "http_status").
func FieldName(f reflect.StructField) (name string, skip bool) {
	if tag, ok := f.Tag.Lookup("trace"); ok {
		tag, _, _ = strings.Cut(tag, ",")
		if tag == "-" {
			return "", true
		}
		if tag != "" {
			return tag, false
		}
	}
	return snake(f.Name), false
}

func snake(s string) string {
	var b strings.Builder
	rs := []rune(s)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			if i > 0 && (unicode.IsLower(rs[i-1]) || unicode.IsDigit(rs[i-1]) ||
				(i+1 < len(rs) && unicode.IsLower(rs[i+1]))) {
				b.WriteByte('_')
			}
			b.WriteRune(unicode.ToLower(r))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func (c *compiler) structFields(t reflect.Type, base uintptr, depth int) ([]catalog.Field, error) {
	if depth > catalog.MaxDepth {
		return nil, fmt.Errorf("%s: structs nested more than %d deep", t, catalog.MaxDepth)
	}
	var fields []catalog.Field
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, skip := FieldName(f)
		if skip {
			continue
		}
		if !catalog.ValidName(name) {
			return nil, fmt.Errorf("field %s: name %q is not an identifier; rename it or set one with a `trace:\"name\"` tag", f.Name, name)
		}
		typ, err := c.value(f.Type, base+f.Offset, depth)
		if err != nil {
			return nil, fmt.Errorf("field %s: %w", f.Name, err)
		}
		fields = append(fields, catalog.Field{Name: name, Type: typ})
	}
	return fields, nil
}

const supported = "use bool, an integer, a float, string, []byte, time.Duration, time.Time, an enum (an integer type with a TraceEnum method), an array or slice of those scalars, or a struct"

// scalar returns the catalog type of a fixed-size Go type, or ok=false.
func scalar(t reflect.Type) (catalog.Type, bool) {
	if t == durationType {
		return catalog.Type{Kind: catalog.Duration}, true
	}
	if t == timeType {
		return catalog.Type{Kind: catalog.Time}, true
	}
	var k catalog.Kind
	switch t.Kind() {
	case reflect.Bool:
		k = catalog.Bool
	case reflect.Int8:
		k = catalog.Int8
	case reflect.Int16:
		k = catalog.Int16
	case reflect.Int32:
		k = catalog.Int32
	case reflect.Int64, reflect.Int:
		k = catalog.Int64
	case reflect.Uint8:
		k = catalog.Uint8
	case reflect.Uint16:
		k = catalog.Uint16
	case reflect.Uint32:
		k = catalog.Uint32
	case reflect.Uint64, reflect.Uint, reflect.Uintptr:
		k = catalog.Uint64
	case reflect.Float32:
		k = catalog.Float32
	case reflect.Float64:
		k = catalog.Float64
	default:
		return catalog.Type{}, false
	}
	base := catalog.Type{Kind: k}
	if k.IsInteger() && t.Implements(enumerType) {
		labels := reflect.Zero(t).Interface().(Enumer).TraceEnum()
		return catalog.Type{Kind: catalog.Enum, Elem: &base, Labels: append([]catalog.EnumLabel(nil), labels...)}, true
	}
	return base, true
}

// goSize is the size of the Go value; a scalar of a kind whose encoded size
// differs (int, uint, uintptr on 32-bit machines) is refused by value().
func (c *compiler) value(t reflect.Type, off uintptr, depth int) (catalog.Type, error) {
	if st, ok := scalar(t); ok {
		switch {
		case st.Kind == catalog.Time:
			c.ops = append(c.ops, op{kind: opTime, off: off})
			c.fixed += 8
		case st.Kind == catalog.Bool:
			c.ops = append(c.ops, op{kind: opBoolNorm, off: off})
			c.fixed++
		default:
			size := encodedSize(st)
			if uintptr(size) != t.Size() {
				return catalog.Type{}, fmt.Errorf("type %s is %d bytes on this machine; use a sized integer type", t, t.Size())
			}
			c.ops = append(c.ops, op{kind: opCopy, off: off, size: uint32(size)})
			c.fixed += size
		}
		return st, nil
	}
	switch t.Kind() {
	case reflect.String:
		c.ops = append(c.ops, op{kind: opString, off: off})
		c.fixed++ // the NUL
		return catalog.Type{Kind: catalog.String}, nil
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 && !t.Elem().Implements(enumerType) {
			c.ops = append(c.ops, op{kind: opBytes, off: off})
			c.fixed += 4
			return catalog.Type{Kind: catalog.Bytes}, nil
		}
		et, ok := scalar(t.Elem())
		if !ok {
			return catalog.Type{}, fmt.Errorf("type %s is not supported: slices hold scalars only; %s", t, supported)
		}
		if et.Kind == catalog.Time {
			c.ops = append(c.ops, op{kind: opTimeSeq, off: off})
		} else {
			if uintptr(encodedSize(et)) != t.Elem().Size() {
				return catalog.Type{}, fmt.Errorf("type %s: elements are %d bytes on this machine; use a sized integer type", t, t.Elem().Size())
			}
			c.ops = append(c.ops, op{kind: opSeq, off: off, size: uint32(encodedSize(et))})
		}
		c.fixed += 4
		return catalog.Type{Kind: catalog.Sequence, Elem: &et}, nil
	case reflect.Array:
		et, ok := scalar(t.Elem())
		if !ok {
			return catalog.Type{}, fmt.Errorf("type %s is not supported: arrays hold scalars only; %s", t, supported)
		}
		if t.Len() == 0 || t.Len() > catalog.MaxArrayLen {
			return catalog.Type{}, fmt.Errorf("type %s: array length must be 1..%d", t, catalog.MaxArrayLen)
		}
		n := t.Len()
		if et.Kind == catalog.Time {
			c.ops = append(c.ops, op{kind: opTimeArr, off: off, size: uint32(n)})
			c.fixed += 8 * n
		} else {
			if uintptr(encodedSize(et)) != t.Elem().Size() {
				return catalog.Type{}, fmt.Errorf("type %s: elements are %d bytes on this machine; use a sized integer type", t, t.Elem().Size())
			}
			// Bool arrays are copied raw: a Go bool is always 0 or 1 unless
			// made with unsafe.
			size := encodedSize(et) * n
			c.ops = append(c.ops, op{kind: opCopy, off: off, size: uint32(size)})
			c.fixed += size
		}
		return catalog.Type{Kind: catalog.Array, Elem: &et, Len: uint32(n)}, nil
	case reflect.Struct:
		fs, err := c.structFields(t, off, depth+1)
		if err != nil {
			return catalog.Type{}, err
		}
		if len(fs) == 0 {
			return catalog.Type{}, fmt.Errorf("struct %s has no exported fields to trace", t)
		}
		return catalog.Type{Kind: catalog.Struct, Fields: fs}, nil
	}
	return catalog.Type{}, fmt.Errorf("type %s is not supported; %s", t, supported)
}

func encodedSize(t catalog.Type) int {
	if t.Kind == catalog.Enum {
		return t.Elem.Kind.Size()
	}
	return t.Kind.Size()
}

// mergeCopies joins copies of adjacent memory into one: struct{A uint64;
// B uint32} becomes a single 12-byte copy.
func mergeCopies(ops []op) []op {
	out := ops[:0:0]
	for _, o := range ops {
		if n := len(out); n > 0 && o.kind == opCopy && out[n-1].kind == opCopy &&
			out[n-1].off+uintptr(out[n-1].size) == o.off {
			out[n-1].size += o.size
			continue
		}
		out = append(out, o)
	}
	return out
}

// Size returns the payload size of the value at v.
func (p *Plan) Size(v unsafe.Pointer) int {
	n := p.fixed
	for i := range p.ops {
		o := &p.ops[i]
		src := unsafe.Add(v, o.off)
		switch o.kind {
		case opString:
			n += len(cutNUL(*(*string)(src)))
		case opBytes:
			n += len(*(*[]byte)(src))
		case opSeq:
			n += int(o.size) * (*reflectSlice)(src).len
		case opTimeSeq:
			n += 8 * (*reflectSlice)(src).len
		}
	}
	return n
}

type reflectSlice struct {
	data unsafe.Pointer
	len  int
	cap  int
}

func cutNUL(s string) string {
	if i := strings.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return s
}

// Encode writes the payload of the value at v into buf and returns its
// length. It returns ok=false, having written garbage, when buf is too small:
// call Size and retry with a buffer that large.
func (p *Plan) Encode(buf []byte, v unsafe.Pointer) (n int, ok bool) {
	for i := range p.ops {
		o := &p.ops[i]
		src := unsafe.Add(v, o.off)
		switch o.kind {
		case opCopy:
			if len(buf)-n < int(o.size) {
				return n, false
			}
			copy(buf[n:], unsafe.Slice((*byte)(src), o.size))
			n += int(o.size)
		case opBoolNorm:
			if n >= len(buf) {
				return n, false
			}
			b := *(*byte)(src)
			if b != 0 {
				b = 1
			}
			buf[n] = b
			n++
		case opString:
			s := cutNUL(*(*string)(src))
			if len(buf)-n < len(s)+1 {
				return n, false
			}
			n += copy(buf[n:], s)
			buf[n] = 0
			n++
		case opBytes:
			b := *(*[]byte)(src)
			if len(buf)-n < 4+len(b) {
				return n, false
			}
			binary.LittleEndian.PutUint32(buf[n:], uint32(len(b)))
			n += 4
			n += copy(buf[n:], b)
		case opSeq:
			s := (*reflectSlice)(src)
			size := s.len * int(o.size)
			if len(buf)-n < 4+size {
				return n, false
			}
			binary.LittleEndian.PutUint32(buf[n:], uint32(s.len))
			n += 4
			if size > 0 {
				n += copy(buf[n:], unsafe.Slice((*byte)(s.data), size))
			}
		case opTime:
			if len(buf)-n < 8 {
				return n, false
			}
			binary.LittleEndian.PutUint64(buf[n:], uint64((*time.Time)(src).UnixNano()))
			n += 8
		case opTimeArr:
			if len(buf)-n < 8*int(o.size) {
				return n, false
			}
			ts := unsafe.Slice((*time.Time)(src), o.size)
			for j := range ts {
				binary.LittleEndian.PutUint64(buf[n:], uint64(ts[j].UnixNano()))
				n += 8
			}
		case opTimeSeq:
			ts := *(*[]time.Time)(src)
			if len(buf)-n < 4+8*len(ts) {
				return n, false
			}
			binary.LittleEndian.PutUint32(buf[n:], uint32(len(ts)))
			n += 4
			for j := range ts {
				binary.LittleEndian.PutUint64(buf[n:], uint64(ts[j].UnixNano()))
				n += 8
			}
		}
	}
	return n, true
}
