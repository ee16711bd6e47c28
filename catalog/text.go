package catalog

import (
	"strconv"
	"time"
)

const hexDigits = "0123456789abcdef"

// AppendText appends a one-line text form of the record to b and returns
// the extended buffer:
//
//	http:request: method="GET", status=200, req.path="/", kind=GET(1), took=1.5ms, sizes=[1, 2], at=2026-01-02T03:04:05.5Z
//
// Fields are written in payload order as path=value, where the path names
// the members of structs "parent.member". Strings are quoted with Go syntax
// (strconv.AppendQuote), Bytes are written in hex after "0x", enums as
// LABEL(value) or just the value when it has no label, durations as
// [time.Duration.String] does, times in RFC 3339 with nanoseconds (UTC),
// arrays and sequences as [a, b]. An event without fields is written
// "provider:name" alone. An opaque event is written "provider:name:
// <opaque>", and when the payload is corrupt the fields before the fault
// are followed by "<error: ...>".
//
// AppendText does not allocate when b has room for the text (except to
// describe a corrupt payload).
func (r Record) AppendText(b []byte) []byte {
	if r.Event == nil {
		return append(b, "<no event>"...)
	}
	b = append(b, r.Event.Provider...)
	b = append(b, ':')
	b = append(b, r.Event.Name...)
	if r.Event.Opaque {
		return append(b, ": <opaque>"...)
	}
	var c Cursor
	c.Reset(r)
	sep := ": "
	for c.Next() {
		b = append(b, sep...)
		sep = ", "
		b = c.AppendPath(b)
		b = append(b, '=')
		b = AppendValueText(b, c.Value())
	}
	if err := c.Err(); err != nil {
		b = append(b, sep...)
		b = append(b, "<error: "...)
		b = append(b, err.Error()...)
		b = append(b, '>')
	}
	return b
}

// AppendValueText appends the text form of one value to b, as
// [Record.AppendText] writes it. The zero Value is written "<invalid>".
func AppendValueText(b []byte, v Value) []byte {
	switch v.Kind() {
	case Bool:
		return strconv.AppendBool(b, v.Bool())
	case Int8, Int16, Int32, Int64:
		return strconv.AppendInt(b, v.Int64(), 10)
	case Uint8, Uint16, Uint32, Uint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case Float32:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 32)
	case Float64:
		return strconv.AppendFloat(b, v.Float64(), 'g', -1, 64)
	case String:
		return strconv.AppendQuote(b, v.Str())
	case Bytes:
		b = append(b, "0x"...)
		for _, x := range v.b {
			b = append(b, hexDigits[x>>4], hexDigits[x&15])
		}
		return b
	case Duration:
		return AppendDurationText(b, v.Duration())
	case Time:
		return v.Time().AppendFormat(b, time.RFC3339Nano)
	case Enum:
		var num [20]byte
		var digits []byte
		if v.t.Elem.Kind.IsSigned() {
			digits = strconv.AppendInt(num[:0], v.Int64(), 10)
		} else {
			digits = strconv.AppendUint(num[:0], v.Uint64(), 10)
		}
		if l := v.Label(); l != "" {
			b = append(b, l...)
			b = append(b, '(')
			b = append(b, digits...)
			return append(b, ')')
		}
		return append(b, digits...)
	case Array, Sequence:
		b = append(b, '[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = AppendValueText(b, v.Index(i))
		}
		return append(b, ']')
	case Struct:
		b = append(b, '{')
		off := 0
		for i := range v.t.Fields {
			f := &v.t.Fields[i]
			fv, next, bad := read(&f.Type, v.b, off, 1)
			if bad != "" {
				break // cannot happen: the struct was read whole
			}
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, f.Name...)
			b = append(b, '=')
			b = AppendValueText(b, fv)
			off = next
		}
		return append(b, '}')
	}
	return append(b, "<invalid>"...)
}

// AppendDurationText appends d as d.String() would, without allocating: the
// largest unit is the hour, fractions drop trailing zeros ("1.5ms",
// "2h0m3.25s", "0s").
func AppendDurationText(b []byte, d time.Duration) []byte {
	var buf [32]byte // longest is "-2562047h47m16.854775808s"
	w := len(buf)
	u := uint64(d)
	if d < 0 {
		u = -u
	}
	if u < uint64(time.Second) {
		var prec int
		w--
		buf[w] = 's'
		w--
		switch {
		case u == 0:
			buf[w] = '0'
			return append(b, buf[w:]...)
		case u < uint64(time.Microsecond):
			buf[w] = 'n'
		case u < uint64(time.Millisecond):
			prec = 3
			w-- // the micro sign U+00B5 is two bytes
			copy(buf[w:], "µ")
		default:
			prec = 6
			buf[w] = 'm'
		}
		w, u = fmtFrac(&buf, w, u, prec)
		w = fmtInt(&buf, w, u)
	} else {
		w--
		buf[w] = 's'
		w, u = fmtFrac(&buf, w, u, 9)
		w = fmtInt(&buf, w, u%60) // seconds
		u /= 60
		if u > 0 {
			w--
			buf[w] = 'm'
			w = fmtInt(&buf, w, u%60) // minutes
			u /= 60
			if u > 0 {
				w--
				buf[w] = 'h'
				w = fmtInt(&buf, w, u) // hours: days differ in length
			}
		}
	}
	if d < 0 {
		w--
		buf[w] = '-'
	}
	return append(b, buf[w:]...)
}

// fmtFrac writes the prec low decimal digits of v before buf[w], as a
// fraction without trailing zeros (nothing at all if they are all zero), and
// returns the new start and v without those digits.
func fmtFrac(buf *[32]byte, w int, v uint64, prec int) (int, uint64) {
	print := false
	for range prec {
		digit := v % 10
		print = print || digit != 0
		if print {
			w--
			buf[w] = byte(digit) + '0'
		}
		v /= 10
	}
	if print {
		w--
		buf[w] = '.'
	}
	return w, v
}

// fmtInt writes v in decimal before buf[w] and returns the new start.
func fmtInt(buf *[32]byte, w int, v uint64) int {
	if v == 0 {
		w--
		buf[w] = '0'
		return w
	}
	for v > 0 {
		w--
		buf[w] = byte(v%10) + '0'
		v /= 10
	}
	return w
}
