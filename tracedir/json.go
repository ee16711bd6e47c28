package tracedir

import (
	"fmt"
	"io"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/usertrace/usertrace/catalog"
)

// WriteJSON writes the events of the traces at or under dirs (see
// [OpenAll]) to w as JSON lines, merged in time order, one object per
// event:
//
//	{"ts":"2026-11-25T13:31:02.123456789Z","app":"hello","pid":42,"shard":0,"event":"http:request_done","fields":{"method":"GET","req":{"status":200},"took":1500000}}
//
// and one per lost-events notice:
//
//	{"ts":"2026-11-25T13:31:02.123456789Z","app":"hello","pid":42,"shard":1,"lost":12}
//
// ts is the wall-clock time in UTC, RFC 3339 with nine fractional digits
// (fixed width: the strings sort in time order). Field values: bool as
// true/false; integers as numbers (all 64 bits: a reader that parses
// numbers as float64 rounds those beyond 2^53); floats as numbers, or the
// strings "NaN", "+Inf", "-Inf"; strings as strings (invalid UTF-8 becomes
// U+FFFD); bytes as a "0x…" hex string; durations as integer nanoseconds;
// times as RFC 3339 strings in UTC; enums as their label, or their number
// when it has none; arrays and sequences as arrays; structs as objects
// (one without fields is left out). A payload that does not match its
// description ends its fields early and adds "error":"…" to the object.
//
// Only opts.Events is used. Errors and Stats are as for [WriteText].
func WriteJSON(w io.Writer, opts TextOptions, dirs ...string) (Stats, error) {
	keep, err := Match(opts.Events)
	if err != nil {
		return Stats{}, fmt.Errorf("write json: %w", err)
	}
	traces, err := OpenAll(dirs...)
	if err != nil {
		return Stats{}, fmt.Errorf("write json: %w", err)
	}
	defer closeAll(traces)
	r := NewReader(traces...)
	r.Filter(keep)
	jw := &jsonWriter{w: w, buf: make([]byte, 0, bufSize+4096), cachedSec: -1 << 63, labels: map[*Trace][]byte{}}
	err = each(r, func(e *Event) error {
		jw.event(e)
		if len(jw.buf) >= bufSize {
			return jw.flush()
		}
		return nil
	})
	if err != nil {
		return r.Stats(), fmt.Errorf("write json: %w", err)
	}
	if err := jw.flush(); err != nil {
		return r.Stats(), fmt.Errorf("write json: %w", err)
	}
	if err := r.Err(); err != nil {
		return r.Stats(), fmt.Errorf("write json: %w", err)
	}
	return r.Stats(), nil
}

type jsonWriter struct {
	w      io.Writer
	buf    []byte
	labels map[*Trace][]byte // `"app":"…","pid":N,"shard":`
	cur    catalog.Cursor
	path   []byte
	prev   []byte // the previous leaf's path
	nOpen  int    // structs open in "fields": the first nOpen names of prev

	cachedSec int64
	secText   []byte // "2006-01-02T15:04:05." of cachedSec, UTC
}

func (jw *jsonWriter) flush() error {
	if len(jw.buf) == 0 {
		return nil
	}
	_, err := jw.w.Write(jw.buf)
	jw.buf = jw.buf[:0]
	return err
}

func (jw *jsonWriter) label(t *Trace) []byte {
	l := jw.labels[t]
	if l == nil {
		l = append(l, `"app":`...)
		l = appendJSONString(l, t.Info.App)
		l = append(l, `,"pid":`...)
		l = strconv.AppendInt(l, int64(t.Info.PID), 10)
		l = append(l, `,"shard":`...)
		jw.labels[t] = l
	}
	return l
}

func (jw *jsonWriter) event(e *Event) {
	b := append(jw.buf, `{"ts":"`...)
	s, ns := floorDiv(e.Wall)
	if s != jw.cachedSec {
		jw.secText = time.Unix(s, 0).UTC().AppendFormat(jw.secText[:0], "2006-01-02T15:04:05.")
		jw.cachedSec = s
	}
	b = append(b, jw.secText...)
	b = append9(b, uint64(ns))
	b = append(b, `Z",`...)
	b = append(b, jw.label(e.Trace)...)
	b = appendUint(b, uint64(e.Shard))
	if e.Desc == nil {
		b = append(b, `,"lost":`...)
		b = appendUint(b, e.Lost)
		jw.buf = append(b, "}\n"...)
		return
	}
	b = append(b, `,"event":"`...)
	b = append(b, e.Desc.Provider...) // identifiers: nothing to escape
	b = append(b, ':')
	b = append(b, e.Desc.Name...)
	b = append(b, `","fields":{`...)
	c := &jw.cur
	c.Reset(e.Record())
	jw.nOpen = 0
	first := true
	for c.Next() {
		// The leaf's path is its enclosing structs, then its name: close
		// the structs it is not in, open the ones it is.
		jw.path = c.AppendPath(jw.path[:0])
		d := c.Depth()
		comps := splitPath(jw.path, d)
		open := splitPath(jw.prev, jw.nOpen)
		k := 0
		for k < jw.nOpen && k < d && string(open[k]) == string(comps[k]) {
			k++
		}
		for ; jw.nOpen > k; jw.nOpen-- {
			b = append(b, '}')
			first = false
		}
		for ; k < d; k++ {
			if !first {
				b = append(b, ',')
			}
			b = append(b, '"')
			b = append(b, comps[k]...)
			b = append(b, `":{`...)
			first = true
		}
		jw.prev = append(jw.prev[:0], jw.path...)
		jw.nOpen = d
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, comps[d]...)
		b = append(b, `":`...)
		b = appendJSONValue(b, c.Value())
	}
	for range jw.nOpen {
		b = append(b, '}')
	}
	b = append(b, '}')
	if err := c.Err(); err != nil {
		b = append(b, `,"error":`...)
		b = appendJSONString(b, err.Error())
	}
	jw.buf = append(b, "}\n"...)
}

// splitPath returns the d+1 dot-separated names of path (field names are
// identifiers, so a dot only separates). The slices alias path.
func splitPath(path []byte, d int) [catalog.MaxDepth + 2][]byte {
	var out [catalog.MaxDepth + 2][]byte
	n, start := 0, 0
	for i := 0; i < len(path) && n < d; i++ {
		if path[i] == '.' {
			out[n] = path[start:i]
			n++
			start = i + 1
		}
	}
	out[n] = path[start:]
	return out
}

func appendJSONValue(b []byte, v catalog.Value) []byte {
	switch v.Kind() {
	case catalog.Bool:
		return strconv.AppendBool(b, v.Bool())
	case catalog.Int8, catalog.Int16, catalog.Int32, catalog.Int64, catalog.Duration:
		return strconv.AppendInt(b, v.Int64(), 10)
	case catalog.Uint8, catalog.Uint16, catalog.Uint32, catalog.Uint64:
		return strconv.AppendUint(b, v.Uint64(), 10)
	case catalog.Float32, catalog.Float64:
		f := v.Float64()
		switch {
		case math.IsNaN(f):
			return append(b, `"NaN"`...)
		case math.IsInf(f, 1):
			return append(b, `"+Inf"`...)
		case math.IsInf(f, -1):
			return append(b, `"-Inf"`...)
		}
		bits := 64
		if v.Kind() == catalog.Float32 {
			bits = 32
		}
		return strconv.AppendFloat(b, f, 'g', -1, bits)
	case catalog.String:
		return appendJSONString(b, v.Str())
	case catalog.Bytes:
		b = append(b, `"0x`...)
		for _, x := range v.Bytes() {
			b = append(b, hexDigits[x>>4], hexDigits[x&15])
		}
		return append(b, '"')
	case catalog.Time:
		b = append(b, '"')
		b = v.Time().AppendFormat(b, time.RFC3339Nano)
		return append(b, '"')
	case catalog.Enum:
		if l := v.Label(); l != "" {
			return appendJSONString(b, l)
		}
		if v.Type().Elem.Kind.IsSigned() {
			return strconv.AppendInt(b, v.Int64(), 10)
		}
		return strconv.AppendUint(b, v.Uint64(), 10)
	case catalog.Array, catalog.Sequence:
		b = append(b, '[')
		for i := 0; i < v.Len(); i++ {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONValue(b, v.Index(i))
		}
		return append(b, ']')
	}
	return append(b, "null"...)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, `\n`...)
			case '\r':
				b = append(b, `\r`...)
			case '\t':
				b = append(b, `\t`...)
			default:
				b = append(b, `\u00`...)
				b = append(b, hexDigits[c>>4], hexDigits[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
