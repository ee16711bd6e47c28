package ctf

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/usertrace/usertrace/catalog"
)

// Trace describes a trace for [Metadata].
type Trace struct {
	// UUID is the trace uuid; every packet header carries it.
	UUID [16]byte
	// Clock maps timestamps to wall-clock time (ring.Info.Clock). If its
	// Freq is 0, timestamps are CLOCK_MONOTONIC ns and ClockOffset maps
	// them.
	Clock Clock
	// ClockOffset is wall-clock time minus the monotonic clock, in
	// nanoseconds, for a Clock with Freq 0: an event's wall time is its
	// timestamp + ClockOffset.
	ClockOffset int64
	// Events are the session's events; an event's index is its id in the
	// event headers. Nil entries are skipped.
	Events []*catalog.Event
	// Env is written to the env block (string values).
	Env map[string]string
}

// FormatUUID formats u the canonical way.
func FormatUUID(u [16]byte) string {
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// Metadata returns the TSDL metadata (CTF 1.8, plain text form) of a trace
// whose packets are laid out as described in this package. It fails for a
// field type CTF 1.8 cannot express (a Bytes or Sequence inside an Array or
// Sequence: the element count must be a named field).
func Metadata(t Trace) (string, error) {
	var b strings.Builder
	clk := t.Clock
	if clk.Freq == 0 {
		clk = NSClock(t.ClockOffset)
	}
	if clk.Offset >= clk.Freq { // keep offset below one second
		clk.OffsetS += int64(clk.Offset / clk.Freq)
		clk.Offset %= clk.Freq
	}
	desc := "CLOCK_MONOTONIC (Go runtime nanotime), offset maps it to wall time"
	if clk.TSC {
		desc = "x86 TSC (invariant), freq measured against CLOCK_MONOTONIC, offset maps it to wall time"
	}
	fmt.Fprintf(&b, `/* CTF 1.8 */

typealias integer { size = 8; align = 8; signed = false; } := uint8_t;
typealias integer { size = 32; align = 8; signed = false; } := uint32_t;
typealias integer { size = 64; align = 8; signed = false; } := uint64_t;

trace {
	major = 1;
	minor = 8;
	uuid = "%s";
	byte_order = le;
	packet.header := struct {
		uint32_t magic;
		uint8_t  uuid[16];
		uint32_t stream_id;
		uint64_t stream_instance_id;
	} align(8);
};

env {
	domain = "ust";
	tracer_name = "usertrace";
	tracer_major = 0;
	tracer_minor = 1;
`, FormatUUID(t.UUID))
	keys := make([]string, 0, len(t.Env))
	for k := range t.Env {
		if catalog.ValidName(k) {
			keys = append(keys, k)
		}
	}
	sortStrings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "\t%s = %s;\n", k, quote(t.Env[k]))
	}
	fmt.Fprintf(&b, `};

clock {
	name = "monotonic";
	description = "%s";
	freq = %d;
	precision = 1;
	offset_s = %d;
	offset = %d;
	absolute = FALSE;
};

typealias integer { size = 27; align = 1; signed = false; map = clock.monotonic.value; } := uint27_clock_monotonic_t;
typealias integer { size = 64; align = 8; signed = false; map = clock.monotonic.value; } := uint64_clock_monotonic_t;

struct packet_context {
	uint64_clock_monotonic_t timestamp_begin;
	uint64_clock_monotonic_t timestamp_end;
	uint64_t content_size;
	uint64_t packet_size;
	uint64_t packet_seq_num;
	uint64_t events_discarded;
	uint32_t cpu_id;
} align(8);

struct event_header_compact {
	enum : integer { size = 5; align = 1; signed = false; } { compact = 0 ... 30, extended = 31 } id;
	variant <id> {
		struct {
			uint27_clock_monotonic_t timestamp;
		} compact;
		struct {
			uint32_t id;
			uint64_clock_monotonic_t timestamp;
		} extended;
	} v;
} align(8);

stream {
	id = 0;
	event.header := struct event_header_compact;
	packet.context := struct packet_context;
};
`, desc, clk.Freq, clk.OffsetS, clk.Offset)
	for id, e := range t.Events {
		if e == nil {
			continue
		}
		if e.Opaque {
			return "", fmt.Errorf("describe %s: event has fields of unknown kinds", e.FullName())
		}
		fmt.Fprintf(&b, "\nevent {\n\tname = %s;\n\tid = %d;\n\tstream_id = 0;\n\tloglevel = %d;\n", quote(e.FullName()), id, e.Level)
		b.WriteString("\tfields := struct {\n")
		if err := writeFields(&b, e.Fields, 2, false); err != nil {
			return "", fmt.Errorf("describe %s: %w", e.FullName(), err)
		}
		b.WriteString("\t} align(8);\n};\n")
	}
	return b.String(), nil
}

// writeFields declares fs, one per line. Names get a "_" prefix, which CTF
// 1.8 readers strip, so that no field name can clash with a TSDL keyword.
func writeFields(b *strings.Builder, fs []catalog.Field, indent int, inArray bool) error {
	for i := range fs {
		if err := writeDecl(b, &fs[i].Type, "_"+fs[i].Name, indent); err != nil {
			return fmt.Errorf("field %s: %w", fs[i].Name, err)
		}
	}
	return nil
}

func writeDecl(b *strings.Builder, t *catalog.Type, name string, indent int) error {
	tab := strings.Repeat("\t", indent)
	switch t.Kind {
	case catalog.Bytes:
		fmt.Fprintf(b, "%suint32_t _%s_length;\n", tab, name)
		fmt.Fprintf(b, "%suint8_t %s[_%s_length];\n", tab, name, name)
		return nil
	case catalog.Sequence:
		if t.Elem == nil {
			return fmt.Errorf("sequence without element type")
		}
		if k := t.Elem.Kind; k == catalog.Sequence || k == catalog.Bytes {
			return fmt.Errorf("a sequence of %s cannot be described in CTF 1.8", k)
		}
		fmt.Fprintf(b, "%suint32_t _%s_length;\n", tab, name)
		return writeElem(b, t.Elem, fmt.Sprintf("%s[_%s_length]", name, name), indent)
	case catalog.Array:
		if t.Elem == nil {
			return fmt.Errorf("array without element type")
		}
		return writeElem(b, t, name, indent)
	}
	return writeElem(b, t, name, indent)
}

// writeElem declares name (which may carry array suffixes) of type t; t may
// not need a separate length field.
func writeElem(b *strings.Builder, t *catalog.Type, name string, indent int) error {
	tab := strings.Repeat("\t", indent)
	switch t.Kind {
	case catalog.Array:
		if t.Elem == nil {
			return fmt.Errorf("array without element type")
		}
		return writeElem(b, t.Elem, fmt.Sprintf("%s[%d]", name, t.Len), indent)
	case catalog.Sequence, catalog.Bytes:
		return fmt.Errorf("an array of %s cannot be described in CTF 1.8", t.Kind)
	case catalog.Struct:
		fmt.Fprintf(b, "%sstruct {\n", tab)
		if err := writeFields(b, t.Fields, indent+1, false); err != nil {
			return err
		}
		fmt.Fprintf(b, "%s} align(8) %s;\n", tab, name)
		return nil
	}
	spec, err := typeSpec(t)
	if err != nil {
		return err
	}
	fmt.Fprintf(b, "%s%s %s;\n", tab, spec, name)
	return nil
}

func intSpec(size int, signed bool) string {
	return fmt.Sprintf("integer { size = %d; align = 8; signed = %t; }", size, signed)
}

// typeSpec returns the TSDL type specifier of a scalar, string or enum.
func typeSpec(t *catalog.Type) (string, error) {
	switch k := t.Kind; k {
	case catalog.Bool:
		return `enum : uint8_t { "false" = 0, "true" = 1 }`, nil
	case catalog.Int8, catalog.Int16, catalog.Int32, catalog.Int64, catalog.Duration, catalog.Time:
		return intSpec(8*k.Size(), true), nil
	case catalog.Uint8, catalog.Uint16, catalog.Uint32, catalog.Uint64:
		return intSpec(8*k.Size(), false), nil
	case catalog.Float32:
		return "floating_point { exp_dig = 8; mant_dig = 24; align = 8; }", nil
	case catalog.Float64:
		return "floating_point { exp_dig = 11; mant_dig = 53; align = 8; }", nil
	case catalog.String:
		return "string { encoding = UTF8; }", nil
	case catalog.Enum:
		if t.Elem == nil || !t.Elem.Kind.IsInteger() {
			return "", fmt.Errorf("enum without an integer base type")
		}
		base := intSpec(8*t.Elem.Kind.Size(), t.Elem.Kind.IsSigned())
		if len(t.Labels) == 0 {
			return base, nil // CTF enums need at least one label
		}
		var s strings.Builder
		s.WriteString("enum : " + base + " { ")
		bits := 8 * t.Elem.Kind.Size()
		for i, l := range t.Labels {
			if i > 0 {
				s.WriteString(", ")
			}
			var v string
			if t.Elem.Kind.IsSigned() {
				x := l.Value << (64 - bits) >> (64 - bits) // sign-extend from the base size
				v = strconv.FormatInt(x, 10)
			} else {
				x := uint64(l.Value)
				if bits < 64 {
					x &= 1<<bits - 1
				}
				v = strconv.FormatUint(x, 10)
			}
			s.WriteString(quote(l.Label) + " = " + v)
		}
		s.WriteString(" }")
		return s.String(), nil
	}
	return "", fmt.Errorf("kind %s has no CTF 1.8 description", t.Kind)
}

// quote makes a TSDL string literal.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

func sortStrings(s []string) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
