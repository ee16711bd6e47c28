package tracedir

import (
	"encoding/binary"
	"math"
	"strconv"
	"time"

	"github.com/usertrace/usertrace/catalog"
)

// A textPlan writes the payload text of one event description exactly as
// catalog.Record.AppendText does, from a field list compiled once.
//
// Why not call AppendText per event: it measured 393 ns/event for the
// benchmark payload (uint64, uint32, 16-byte string) on the development
// machine (2 vCPU EPYC, 2026-11-25), mostly in the generic Cursor and in
// strconv.AppendQuote's per-rune path, which caps a viewer at 2.5 M
// events/s; the plan takes about a tenth of that (BenchmarkPlan). Every
// payload the plan cannot write (a kind it does not handle, a payload that
// does not match, a string that needs escaping is handed to strconv) falls
// back to AppendText, and TestPlanMatchesAppendText and FuzzPlan hold the two
// byte-identical.
type textPlan struct {
	lead string // written first: "app/pid " in WriteText's plans
	head string // lead + "provider:name"
	ops  []fieldOp
	slow bool // always use AppendText
}

type fieldOp struct {
	// prefix is ": path=" for the first leaf (after head, which it holds),
	// ", path=" after; with the opening quote of a string.
	prefix string
	code   uint8 // how to write the value: opGeneral, or a common case inline
	t      *catalog.Type
}

// fieldOp codes: the common kinds are written inline by appendText, the
// others by appendValue.
const (
	opGeneral = iota
	opUint64
	opUint32
	opInt64
	opInt32
	opString
)

func compilePlan(lead string, e *catalog.Event) *textPlan {
	p := &textPlan{lead: lead, head: lead + e.Provider + ":" + e.Name}
	if e.Opaque || !p.addFields(e.Fields, "", 0) {
		p.slow, p.ops = true, nil
	}
	for i := range p.ops {
		op := &p.ops[i]
		switch op.t.Kind {
		case catalog.Uint64:
			op.code = opUint64
		case catalog.Uint32:
			op.code = opUint32
		case catalog.Int64:
			op.code = opInt64
		case catalog.Int32:
			op.code = opInt32
		case catalog.String:
			op.code = opString
			op.prefix += `"`
		}
	}
	if len(p.ops) > 0 {
		p.ops[0].prefix = p.head + p.ops[0].prefix
	}
	return p
}

// addFields flattens fs (struct members under path) into leaf ops, as
// catalog.Cursor does. It returns false for a description the plan does not
// handle.
func (p *textPlan) addFields(fs []catalog.Field, path string, depth int) bool {
	for i := range fs {
		f := &fs[i]
		name := path + f.Name
		if f.Type.Kind == catalog.Struct {
			// Cursor: structs nested deeper than its stack are an error.
			if depth+1 > catalog.MaxDepth {
				return false
			}
			if !p.addFields(f.Type.Fields, name+".", depth+1) {
				return false
			}
			continue
		}
		if !planned(&f.Type) {
			return false
		}
		sep := ", "
		if len(p.ops) == 0 {
			sep = ": "
		}
		p.ops = append(p.ops, fieldOp{prefix: sep + name + "=", t: &f.Type})
	}
	return true
}

// planned reports whether the plan writes values of type t.
func planned(t *catalog.Type) bool {
	switch t.Kind {
	case catalog.Enum:
		return t.Elem != nil && t.Elem.Kind.IsInteger()
	case catalog.Array, catalog.Sequence:
		return t.Elem != nil && t.Elem.Kind != catalog.Array && t.Elem.Kind != catalog.Sequence && planned(t.Elem) && elemSize(t.Elem) > 0
	case catalog.String, catalog.Bytes:
		return true
	}
	return t.Kind.IsScalar()
}

func elemSize(t *catalog.Type) int {
	if t.Kind == catalog.Enum {
		return t.Elem.Kind.Size()
	}
	return t.Kind.Size()
}

// appendText appends the lead and the text of the record (event e,
// payload p) to b.
func (pl *textPlan) appendText(b []byte, e *catalog.Event, p []byte) []byte {
	if pl.slow {
		return catalog.Record{Event: e, Payload: p}.AppendText(append(b, pl.lead...))
	}
	start := len(b)
	if len(pl.ops) == 0 {
		b = append(b, pl.head...)
	}
	le := binary.LittleEndian
	off := 0
	ok := true
	for i := range pl.ops {
		op := &pl.ops[i]
		b = append(b, op.prefix...)
		switch op.code {
		case opUint64, opInt64:
			if len(p)-off < 8 {
				ok = false
				break
			}
			x := le.Uint64(p[off:])
			off += 8
			if op.code == opInt64 && int64(x) < 0 {
				b = append(b, '-')
				x = -x
			}
			b = appendDec(b, x)
		case opUint32, opInt32:
			if len(p)-off < 4 {
				ok = false
				break
			}
			x := uint64(le.Uint32(p[off:]))
			off += 4
			if op.code == opInt32 && int32(x) < 0 {
				b = append(b, '-')
				x = uint64(-int64(int32(x)))
			}
			b = appendDec(b, x)
		case opString:
			// Eight bytes at a time while every one is printable ASCII
			// other than the quote and the backslash (the NUL fails the
			// test too); then up to the NUL. Anything strconv.AppendQuote
			// would not write unchanged is AppendText's job.
			j := off
			for ; len(p)-j >= 8 && plain8(le.Uint64(p[j:])); j += 8 {
			}
			for ; j < len(p); j++ {
				c := p[j]
				if c < ' ' || c >= 0x7f || c == '"' || c == '\\' {
					break
				}
			}
			if j >= len(p) || p[j] != 0 {
				ok = false
				break
			}
			b = append(b, p[off:j]...)
			b = append(b, '"')
			off = j + 1
		default:
			b, off, ok = appendValue(b, op.t, p, off)
		}
		if !ok {
			break
		}
	}
	if !ok || off != len(p) {
		return catalog.Record{Event: e, Payload: p}.AppendText(append(b[:start], pl.lead...))
	}
	return b
}

// appendValue writes the value of type t at p[off:] and returns the offset
// after it, or false if p is too short (or the value is one to leave to
// AppendText).
func appendValue(b []byte, t *catalog.Type, p []byte, off int) ([]byte, int, bool) {
	left := len(p) - off
	le := binary.LittleEndian
	switch t.Kind {
	case catalog.String:
		i := off
		// Eight bytes at a time while every one is printable ASCII other
		// than the quote and the backslash (the NUL fails the test too).
		for ; len(p)-i >= 8; i += 8 {
			if !plain8(le.Uint64(p[i:])) {
				break
			}
		}
		for ; i < len(p); i++ {
			c := p[i]
			if c == 0 {
				b = append(b, '"')
				b = append(b, p[off:i]...)
				return append(b, '"'), i + 1, true
			}
			// What strconv.AppendQuote writes unchanged: printable ASCII
			// but the quote and the backslash. Anything else is its job.
			if c < ' ' || c >= 0x7f || c == '"' || c == '\\' {
				return b, off, false
			}
		}
		return b, off, false
	case catalog.Bytes:
		if left < 4 {
			return b, off, false
		}
		n := uint64(le.Uint32(p[off:]))
		if n > uint64(left-4) {
			return b, off, false
		}
		off += 4
		b = append(b, "0x"...)
		for _, x := range p[off : off+int(n)] {
			b = append(b, hexDigits[x>>4], hexDigits[x&15])
		}
		return b, off + int(n), true
	case catalog.Array, catalog.Sequence:
		es := elemSize(t.Elem)
		n := uint64(t.Len)
		if t.Kind == catalog.Sequence {
			if left < 4 {
				return b, off, false
			}
			n = uint64(le.Uint32(p[off:]))
			off += 4
			left -= 4
		}
		if n*uint64(es) > uint64(left) {
			return b, off, false
		}
		b = append(b, '[')
		for i := uint64(0); i < n; i++ {
			if i > 0 {
				b = append(b, ", "...)
			}
			b, off, _ = appendValue(b, t.Elem, p, off) // in bounds: checked above
		}
		return append(b, ']'), off, true
	}
	n := elemSize(t)
	if n == 0 || left < n {
		return b, off, false
	}
	v := p[off : off+n]
	off += n
	k := t.Kind
	if k == catalog.Enum {
		k = t.Elem.Kind
	}
	var x uint64 // the bits, sign-extended for signed kinds
	switch k {
	case catalog.Bool, catalog.Uint8:
		x = uint64(v[0])
	case catalog.Int8:
		x = uint64(int64(int8(v[0])))
	case catalog.Uint16:
		x = uint64(le.Uint16(v))
	case catalog.Int16:
		x = uint64(int64(int16(le.Uint16(v))))
	case catalog.Uint32, catalog.Float32:
		x = uint64(le.Uint32(v))
	case catalog.Int32:
		x = uint64(int64(int32(le.Uint32(v))))
	default:
		x = le.Uint64(v)
	}
	switch t.Kind {
	case catalog.Bool:
		return strconv.AppendBool(b, x != 0), off, true
	case catalog.Int8, catalog.Int16, catalog.Int32, catalog.Int64:
		if int64(x) < 0 {
			return appendDec(append(b, '-'), -x), off, true
		}
		return appendDec(b, x), off, true
	case catalog.Uint8, catalog.Uint16, catalog.Uint32, catalog.Uint64:
		return appendDec(b, x), off, true
	case catalog.Float32:
		return strconv.AppendFloat(b, float64(math.Float32frombits(uint32(x))), 'g', -1, 32), off, true
	case catalog.Float64:
		return strconv.AppendFloat(b, math.Float64frombits(x), 'g', -1, 64), off, true
	case catalog.Duration:
		return catalog.AppendDurationText(b, time.Duration(x)), off, true
	case catalog.Time:
		return time.Unix(0, int64(x)).UTC().AppendFormat(b, time.RFC3339Nano), off, true
	case catalog.Enum:
		var num [20]byte
		var digits []byte
		if t.Elem.Kind.IsSigned() {
			digits = strconv.AppendInt(num[:0], int64(x), 10)
		} else {
			digits = strconv.AppendUint(num[:0], x, 10)
		}
		for i := range t.Labels {
			if l := &t.Labels[i]; uint64(l.Value) == x {
				if l.Label == "" {
					break // catalog.Value.Label: "" means no label
				}
				b = append(b, l.Label...)
				b = append(b, '(')
				b = append(b, digits...)
				return append(b, ')'), off, true
			}
		}
		return append(b, digits...), off, true
	}
	return b, off, false
}

const hexDigits = "0123456789abcdef"

// plain8 reports whether each of the 8 bytes in x is in 0x20..0x7e and is
// neither '"' nor '\\' (SWAR: a byte's high bit marks a match).
func plain8(x uint64) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zero := func(v uint64) uint64 { return (v - ones) & ^v & highs } // some byte == 0
	bad := (x - 0x20*ones) & ^x & highs                              // some byte < 0x20 (bytes below 0x80)
	bad |= x & highs                                                 // some byte >= 0x80
	bad |= zero(x ^ 0x7f*ones)                                       // 0x7f
	bad |= zero(x ^ '"'*ones)
	bad |= zero(x ^ '\\'*ones)
	return bad == 0
}
