package catalog

import (
	"encoding/binary"
	"math"
	"strings"
	"time"
)

// This file writes the binary encoding of descriptions (the catalog) and,
// further down, the field values of a payload. The byte-by-byte layout of
// both is in docs/description-abi.md; keep the two in step.

// Catalog encoding constants. They are part of the ABI.
const (
	// Magic opens every encoded catalog: "UTCG", UserTrace CataloG.
	Magic = "UTCG"
	// Version is the catalog encoding version this package writes. A
	// decoder reads every version from 1 up: later versions only append to
	// existing records and add record tags, kinds and attribute kinds,
	// which older decoders skip and count (see [Decoded]).
	Version = 1
	// HeaderSize is the size of the catalog header this package writes and
	// the least it accepts. A later version may write a longer header; a
	// decoder skips the bytes it does not know.
	HeaderSize = 12
)

// Record tags of the catalog encoding. The numbers are part of the ABI.
const (
	TagEvent = 1 // an event description
)

// Attribute value kinds of the catalog encoding. The numbers are part of the
// ABI.
const (
	AttrString = 1 // a UTF-8 string
)

const (
	maxStr   = math.MaxUint16 // longest string the encoding holds
	maxCount = math.MaxUint16 // most fields, labels or attributes in one list
)

// AppendCatalog appends the encoding of a catalog holding events to b: the
// header, then one record per event as written by [AppendEvent]. Nil events
// are left out. Every event should pass [Event.Validate]; one that does not
// is still written, as it is, but decoders may reject the catalog.
func AppendCatalog(b []byte, events []*Event) []byte {
	n := 0
	for _, e := range events {
		if e != nil {
			n++
		}
	}
	b = append(b, Magic...)
	b = binary.LittleEndian.AppendUint16(b, Version)
	b = binary.LittleEndian.AppendUint16(b, HeaderSize)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	for _, e := range events {
		if e != nil {
			b = AppendEvent(b, e)
		}
	}
	return b
}

// AppendEvent appends one event description to b as a length-prefixed
// record (tag [TagEvent]), the unit of a catalog that a tracer can also be
// sent on its own when a new event is defined. [DecodeEvent] reads it back.
//
// The event should pass [Event.Validate]. Beyond that, strings longer than
// 65535 bytes are cut (a File path keeps its tail) and lists longer than
// 65535 entries are cut; a field of an unknown kind (Kind KindInvalid, from a
// decoder) is written with its RawKind and an empty body.
func AppendEvent(b []byte, e *Event) []byte {
	b = append(b, TagEvent)
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint32(b, e.ID)
	b = append(b, byte(e.Level))
	b = appendStr(b, e.Provider)
	b = appendStr(b, e.Name)
	file := e.File
	if len(file) > maxStr {
		file = file[len(file)-maxStr:]
	}
	b = appendStr(b, file)
	b = binary.LittleEndian.AppendUint32(b, e.Line)
	b = appendFields(b, e.Fields)
	attrs := e.Attrs
	if len(attrs) > maxCount {
		attrs = attrs[:maxCount]
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(attrs)))
	for _, a := range attrs {
		a0 := len(b)
		b = append(b, 0, 0, 0, 0, AttrString)
		b = appendStr(b, a.Key)
		b = appendStr(b, a.Value)
		b = patchLen(b, a0)
	}
	return patchLen(b, at)
}

// appendStr appends s as a u16 length and its bytes, cut to 65535 bytes.
func appendStr(b []byte, s string) []byte {
	if len(s) > maxStr {
		s = s[:maxStr]
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// patchLen writes, at b[at:at+4], the number of bytes that follow them.
func patchLen(b []byte, at int) []byte {
	binary.LittleEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

func appendFields(b []byte, fs []Field) []byte {
	if len(fs) > maxCount {
		fs = fs[:maxCount]
	}
	b = binary.LittleEndian.AppendUint16(b, uint16(len(fs)))
	for i := range fs {
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		b = appendStr(b, fs[i].Name)
		b = appendType(b, &fs[i].Type)
		b = patchLen(b, at)
	}
	return b
}

// appendType appends a type: its kind, the length of its body, its body. A
// nil type (an Array without Elem, say) is written as kind 0, which every
// decoder rejects.
func appendType(b []byte, t *Type) []byte {
	if t == nil {
		return append(b, byte(KindInvalid), 0, 0, 0, 0)
	}
	k := byte(t.Kind)
	if t.Kind == KindInvalid {
		k = t.RawKind
	}
	b = append(b, k)
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	switch t.Kind {
	case Enum:
		b = appendType(b, t.Elem)
		labels := t.Labels
		if len(labels) > maxCount {
			labels = labels[:maxCount]
		}
		b = binary.LittleEndian.AppendUint16(b, uint16(len(labels)))
		for _, l := range labels {
			l0 := len(b)
			b = append(b, 0, 0, 0, 0)
			b = binary.LittleEndian.AppendUint64(b, uint64(l.Value))
			b = appendStr(b, l.Label)
			b = patchLen(b, l0)
		}
	case Array:
		b = binary.LittleEndian.AppendUint32(b, t.Len)
		b = appendType(b, t.Elem)
	case Sequence:
		b = appendType(b, t.Elem)
	case Struct:
		b = appendFields(b, t.Fields)
	}
	return patchLen(b, at)
}

// Payload encoding.
//
// These functions append one field value to a payload in the layout of the
// package comment. The instrumentation library generates its encoders from
// the same layout; these are for tests and hand-written encoders in other
// packages. Each is small enough to inline.

// AppendBool appends a Bool value: one byte, 0 or 1.
func AppendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

// AppendInt8 appends an Int8 value.
func AppendInt8(b []byte, v int8) []byte { return append(b, byte(v)) }

// AppendInt16 appends an Int16 value.
func AppendInt16(b []byte, v int16) []byte { return binary.LittleEndian.AppendUint16(b, uint16(v)) }

// AppendInt32 appends an Int32 value.
func AppendInt32(b []byte, v int32) []byte { return binary.LittleEndian.AppendUint32(b, uint32(v)) }

// AppendInt64 appends an Int64 value.
func AppendInt64(b []byte, v int64) []byte { return binary.LittleEndian.AppendUint64(b, uint64(v)) }

// AppendUint8 appends a Uint8 value.
func AppendUint8(b []byte, v uint8) []byte { return append(b, v) }

// AppendUint16 appends a Uint16 value.
func AppendUint16(b []byte, v uint16) []byte { return binary.LittleEndian.AppendUint16(b, v) }

// AppendUint32 appends a Uint32 value, and the count that opens a Sequence.
func AppendUint32(b []byte, v uint32) []byte { return binary.LittleEndian.AppendUint32(b, v) }

// AppendUint64 appends a Uint64 value.
func AppendUint64(b []byte, v uint64) []byte { return binary.LittleEndian.AppendUint64(b, v) }

// AppendFloat32 appends a Float32 value.
func AppendFloat32(b []byte, v float32) []byte {
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
}

// AppendFloat64 appends a Float64 value.
func AppendFloat64(b []byte, v float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
}

// AppendString appends a String value: the bytes of s up to its first NUL
// (the rest is cut, as the layout cannot hold it), then a NUL.
func AppendString(b []byte, s string) []byte {
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return append(append(b, s...), 0)
}

// AppendBytes appends a Bytes value: a uint32 length, then p. A p longer
// than 4 GiB - 1 is cut.
func AppendBytes(b []byte, p []byte) []byte {
	if uint64(len(p)) > math.MaxUint32 {
		p = p[:math.MaxUint32]
	}
	return append(binary.LittleEndian.AppendUint32(b, uint32(len(p))), p...)
}

// AppendDuration appends a Duration value: int64 nanoseconds.
func AppendDuration(b []byte, d time.Duration) []byte {
	return binary.LittleEndian.AppendUint64(b, uint64(d))
}

// AppendTime appends a Time value: int64 nanoseconds since the Unix epoch
// (t.UnixNano, so only years 1678 to 2262 are represented).
func AppendTime(b []byte, t time.Time) []byte {
	return binary.LittleEndian.AppendUint64(b, uint64(t.UnixNano()))
}
