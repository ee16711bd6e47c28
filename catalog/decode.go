package catalog

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrCorrupt is wrapped by every error that reports malformed input: a
// catalog encoding that cannot be read, or a payload that does not match its
// event's description. The error's message says what was wrong and where.
var ErrCorrupt = errors.New("corrupt input")

// Decoded is a decoded catalog.
type Decoded struct {
	// Version is the encoding version the writer used. It may be above
	// [Version]: what this package does not know is skipped and counted
	// below.
	Version uint16
	// Events are the event descriptions in the order of the encoding. Each
	// passes [Event.Validate], except that an event marked Opaque has fields
	// of a kind this package does not know.
	Events []*Event

	// HeaderBytes counts header bytes beyond those this version knows.
	HeaderBytes int
	// UnknownRecords counts records of a tag this version does not know.
	UnknownRecords int
	// UnknownKinds counts types of a kind this version does not know. Each
	// makes its event Opaque.
	UnknownKinds int
	// UnknownAttrs counts attributes of a value kind this version does not
	// know. They are left out of their event's Attrs.
	UnknownAttrs int
	// ExtraBytes counts bytes appended to known records (events, fields,
	// types, labels, attributes) by a later version, skipped.
	ExtraBytes int
}

// Smallest encodings, which bound how many entries a count may announce.
const (
	recordHead   = 5            // tag, length
	minFieldSize = 4 + 2 + 5    // length, name, type
	minLabelSize = 4 + 8 + 2    // length, value, label
	minAttrSize  = 4 + 1 + 2    // length, kind, key
	maxTypeDepth = MaxDepth + 2 // recursion guard; Validate has the final word
	minEventBody = 4 + 1 + 3*2 + 4 + 2 + 2
)

// DecodeCatalog decodes a catalog written by [AppendCatalog], or by any
// writer that follows docs/description-abi.md.
//
// The input is treated as hostile: DecodeCatalog never panics, allocates in
// proportion to len(b) at most, and returns an error wrapping [ErrCorrupt]
// that says where (a byte offset) and what when b is not a well-formed
// catalog, when it ends early or has bytes after its last record, or when an
// event fails [Event.Validate]. What a later version added (header bytes,
// record tags, kinds, attribute kinds, bytes appended to a record) is
// skipped and counted in the result rather than reported as an error.
func DecodeCatalog(b []byte) (*Decoded, error) {
	d := decoder{buf: b, end: len(b)}
	if len(b) < HeaderSize {
		return nil, fmt.Errorf("decode catalog: %d bytes, shorter than the %d-byte header: %w", len(b), HeaderSize, ErrCorrupt)
	}
	if string(b[:4]) != Magic {
		return nil, fmt.Errorf("decode catalog: byte 0: magic %q, want %q: %w", b[:4], Magic, ErrCorrupt)
	}
	out := &Decoded{Version: binary.LittleEndian.Uint16(b[4:])}
	if out.Version == 0 {
		return nil, fmt.Errorf("decode catalog: byte 4: version 0: %w", ErrCorrupt)
	}
	hsize := int(binary.LittleEndian.Uint16(b[6:]))
	if hsize < HeaderSize || hsize > len(b) {
		return nil, fmt.Errorf("decode catalog: byte 6: header size %d out of range %d..%d: %w", hsize, HeaderSize, len(b), ErrCorrupt)
	}
	out.HeaderBytes = hsize - HeaderSize
	count := binary.LittleEndian.Uint32(b[8:])
	d.off = hsize
	if uint64(count) > uint64(len(b)-d.off)/recordHead {
		return nil, fmt.Errorf("decode catalog: byte 8: %d records cannot fit in the %d bytes left: %w", count, len(b)-d.off, ErrCorrupt)
	}
	out.Events = make([]*Event, 0, min(int(count), (len(b)-d.off)/(recordHead+minEventBody)))
	for i := 0; i < int(count); i++ {
		at := d.off
		e, err := d.record()
		if err != nil {
			return nil, fmt.Errorf("decode catalog: record %d at byte %d: %w", i, at, err)
		}
		if e != nil {
			out.Events = append(out.Events, e)
		}
	}
	if d.off != len(b) {
		return nil, fmt.Errorf("decode catalog: byte %d: %d bytes after the last of %d records: %w", d.off, len(b)-d.off, count, ErrCorrupt)
	}
	out.UnknownRecords = d.unknownRecords
	out.UnknownKinds = d.unknownKinds
	out.UnknownAttrs = d.unknownAttrs
	out.ExtraBytes = d.extraBytes
	return out, nil
}

// DecodeEvent decodes the record at the start of b, as written by
// [AppendEvent], and returns the event and the length n of the record. Bytes
// after the record are left alone.
//
// A record of a tag this package does not know is not an error: DecodeEvent
// returns a nil event and its length, so that the caller can skip it. Errors
// are as for [DecodeCatalog], with offsets counted from the start of b; n is
// then 0.
func DecodeEvent(b []byte) (e *Event, n int, err error) {
	d := decoder{buf: b, end: len(b)}
	e, err = d.record()
	if err != nil {
		return nil, 0, fmt.Errorf("decode event: %w", err)
	}
	return e, d.off, nil
}

// decoder reads buf[off:end]. Sub-records narrow end for the time they are
// read (see sub).
type decoder struct {
	buf      []byte
	off, end int

	unknownRecords, unknownKinds, unknownAttrs, extraBytes int
	opaque                                                 bool
}

func (d *decoder) corrupt(at int, format string, args ...any) error {
	return fmt.Errorf("byte %d: %s: %w", at, fmt.Sprintf(format, args...), ErrCorrupt)
}

func (d *decoder) left() int { return d.end - d.off }

func (d *decoder) need(n int, what string) error {
	if n > d.left() {
		return d.corrupt(d.off, "%s needs %d bytes, %d left", what, n, d.left())
	}
	return nil
}

func (d *decoder) u8(what string) (uint8, error) {
	if err := d.need(1, what); err != nil {
		return 0, err
	}
	d.off++
	return d.buf[d.off-1], nil
}

func (d *decoder) u16(what string) (uint16, error) {
	if err := d.need(2, what); err != nil {
		return 0, err
	}
	d.off += 2
	return binary.LittleEndian.Uint16(d.buf[d.off-2:]), nil
}

func (d *decoder) u32(what string) (uint32, error) {
	if err := d.need(4, what); err != nil {
		return 0, err
	}
	d.off += 4
	return binary.LittleEndian.Uint32(d.buf[d.off-4:]), nil
}

func (d *decoder) u64(what string) (uint64, error) {
	if err := d.need(8, what); err != nil {
		return 0, err
	}
	d.off += 8
	return binary.LittleEndian.Uint64(d.buf[d.off-8:]), nil
}

// str reads a u16 length and that many bytes, at most max.
func (d *decoder) str(what string, max int) (string, error) {
	at := d.off
	n, err := d.u16(what)
	if err != nil {
		return "", err
	}
	if int(n) > max {
		return "", d.corrupt(at, "%s of %d bytes, at most %d", what, n, max)
	}
	if err := d.need(int(n), what); err != nil {
		return "", err
	}
	d.off += int(n)
	return string(d.buf[d.off-int(n) : d.off]), nil
}

// count reads a u16 count of entries at least minSize bytes long each, at
// most max of them, and checks that they can fit in what is left.
func (d *decoder) count(what string, max, minSize int) (int, error) {
	at := d.off
	n, err := d.u16(what)
	if err != nil {
		return 0, err
	}
	if int(n) > max {
		return 0, d.corrupt(at, "%d %s, at most %d", n, what, max)
	}
	if int(n)*minSize > d.left() {
		return 0, d.corrupt(at, "%d %s cannot fit in the %d bytes left", n, what, d.left())
	}
	return int(n), nil
}

// sub reads a u32 length and narrows the decoder to that many bytes. The
// returned end restores it: it skips and counts what is left unread (bytes
// a later version appended) and resets the outer limit.
func (d *decoder) sub(what string) (outer int, err error) {
	at := d.off
	n, err := d.u32(what + " length")
	if err != nil {
		return 0, err
	}
	if uint64(n) > uint64(d.left()) {
		return 0, d.corrupt(at, "%s of %d bytes, %d left", what, n, d.left())
	}
	outer = d.end
	d.end = d.off + int(n)
	return outer, nil
}

func (d *decoder) endSub(outer int) {
	d.extraBytes += d.end - d.off
	d.off = d.end
	d.end = outer
}

// record reads one tagged record; it returns a nil event for an unknown tag.
func (d *decoder) record() (*Event, error) {
	tag, err := d.u8("record tag")
	if err != nil {
		return nil, err
	}
	at := d.off
	outer, err := d.sub("record")
	if err != nil {
		return nil, err
	}
	if tag != TagEvent {
		d.unknownRecords++
		d.off, d.end = d.end, outer // a skipped record is not extra bytes
		return nil, nil
	}
	e, err := d.event()
	if err != nil {
		return nil, err
	}
	d.endSub(outer)
	if err := validateDecoded(e); err != nil {
		return nil, d.corrupt(at-1, "invalid description: %v", err)
	}
	return e, nil
}

func (d *decoder) event() (*Event, error) {
	d.opaque = false
	e := new(Event)
	var err error
	if e.ID, err = d.u32("event id"); err != nil {
		return nil, err
	}
	lv, err := d.u8("level")
	if err != nil {
		return nil, err
	}
	e.Level = Level(lv)
	if e.Provider, err = d.str("provider", MaxNameLen); err != nil {
		return nil, err
	}
	if e.Name, err = d.str("event name", MaxNameLen); err != nil {
		return nil, err
	}
	if e.File, err = d.str("file", maxStr); err != nil {
		return nil, err
	}
	if e.Line, err = d.u32("line"); err != nil {
		return nil, err
	}
	if e.Fields, err = d.fields(0); err != nil {
		return nil, err
	}
	n, err := d.count("attributes", MaxAttrs, minAttrSize)
	if err != nil {
		return nil, err
	}
	for i := 0; i < n; i++ {
		if err := d.attr(e); err != nil {
			return nil, fmt.Errorf("attribute %d: %w", i, err)
		}
	}
	e.Opaque = d.opaque
	return e, nil
}

func (d *decoder) attr(e *Event) error {
	outer, err := d.sub("attribute")
	if err != nil {
		return err
	}
	kind, err := d.u8("attribute kind")
	if err != nil {
		return err
	}
	if kind != AttrString {
		d.unknownAttrs++
		d.off, d.end = d.end, outer
		return nil
	}
	var a Attr
	if a.Key, err = d.str("attribute key", MaxAttrLen); err != nil {
		return err
	}
	if a.Value, err = d.str("attribute value", MaxAttrLen); err != nil {
		return err
	}
	e.Attrs = append(e.Attrs, a)
	d.endSub(outer)
	return nil
}

func (d *decoder) fields(depth int) ([]Field, error) {
	n, err := d.count("fields", MaxFields, minFieldSize)
	if err != nil || n == 0 {
		return nil, err
	}
	fs := make([]Field, n)
	for i := range fs {
		outer, err := d.sub("field")
		if err != nil {
			return nil, fmt.Errorf("field %d: %w", i, err)
		}
		if fs[i].Name, err = d.str("field name", MaxNameLen); err != nil {
			return nil, fmt.Errorf("field %d: %w", i, err)
		}
		if err := d.typ(&fs[i].Type, depth); err != nil {
			return nil, fmt.Errorf("field %s: %w", fs[i].Name, err)
		}
		d.endSub(outer)
	}
	return fs, nil
}

func (d *decoder) typ(t *Type, depth int) error {
	at := d.off
	if depth > maxTypeDepth {
		return d.corrupt(at, "types nested more than %d deep", MaxDepth)
	}
	k, err := d.u8("kind")
	if err != nil {
		return err
	}
	if k == 0 {
		return d.corrupt(at, "kind 0")
	}
	outer, err := d.sub("type")
	if err != nil {
		return err
	}
	t.Kind = Kind(k)
	if !t.Kind.Known() {
		// Rule 3 of the package comment: keep the event, mark it
		// opaque, and never guess at the body.
		t.Kind, t.RawKind = KindInvalid, k
		d.unknownKinds++
		d.opaque = true
		d.off, d.end = d.end, outer
		return nil
	}
	switch t.Kind {
	case Enum:
		t.Elem = new(Type)
		if err := d.typ(t.Elem, depth+1); err != nil {
			return fmt.Errorf("enum base: %w", err)
		}
		n, err := d.count("enum labels", MaxEnumLabel, minLabelSize)
		if err != nil {
			return err
		}
		if n > 0 {
			t.Labels = make([]EnumLabel, n)
		}
		for i := range t.Labels {
			l := &t.Labels[i]
			o, err := d.sub("enum label")
			if err != nil {
				return err
			}
			v, err := d.u64("enum value")
			if err != nil {
				return err
			}
			l.Value = int64(v)
			if l.Label, err = d.str("enum label", MaxNameLen); err != nil {
				return err
			}
			d.endSub(o)
		}
	case Array:
		if t.Len, err = d.u32("array length"); err != nil {
			return err
		}
		t.Elem = new(Type)
		if err := d.typ(t.Elem, depth+1); err != nil {
			return fmt.Errorf("array element: %w", err)
		}
	case Sequence:
		t.Elem = new(Type)
		if err := d.typ(t.Elem, depth+1); err != nil {
			return fmt.Errorf("sequence element: %w", err)
		}
	case Struct:
		if t.Fields, err = d.fields(depth + 1); err != nil {
			return err
		}
	}
	d.endSub(outer)
	return nil
}

// validateDecoded runs Validate on e, or for an opaque event on a copy whose
// unknown types are replaced by a known scalar, so that an opaque event obeys
// every rule but the one about kinds.
func validateDecoded(e *Event) error {
	if !e.Opaque {
		return e.Validate()
	}
	c := *e
	c.Fields = knownFields(e.Fields)
	return c.Validate()
}

func knownFields(fs []Field) []Field {
	if fs == nil {
		return nil
	}
	out := make([]Field, len(fs))
	for i := range fs {
		out[i] = Field{Name: fs[i].Name, Type: knownType(fs[i].Type)}
	}
	return out
}

func knownType(t Type) Type {
	if t.Kind == KindInvalid {
		return Type{Kind: Uint8}
	}
	if t.Elem != nil {
		e := knownType(*t.Elem)
		t.Elem = &e
	}
	t.Fields = knownFields(t.Fields)
	return t
}
