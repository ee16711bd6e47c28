package protocol

import (
	"bytes"
	"errors"
	"testing"

	"github.com/usertrace/usertrace/catalog"
)

func TestRoundTrip(t *testing.T) {
	in := SessionOpen{Session: 7, Name: "s", Patterns: []Pattern{{Glob: "http:*", Level: "info"}}, Ring: RingConfig{Shards: 2, NumSub: 4, SubSize: 4096}}
	msg, err := Marshal(TypeSessionOpen, in)
	if err != nil {
		t.Fatal(err)
	}
	h, err := Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	var out SessionOpen
	if err := h.Decode(&out); err != nil {
		t.Fatal(err)
	}
	if h.Type != TypeSessionOpen || h.Version != Version || out.Session != 7 || out.Patterns[0] != in.Patterns[0] || out.Ring != in.Ring {
		t.Fatalf("round trip: %v %+v", h.Type, out)
	}
}

func TestParseRejects(t *testing.T) {
	good, _ := Marshal(TypeHello, Hello{Version: 1})
	cases := map[string][]byte{
		"empty":       nil,
		"short":       good[:HeaderSize-1],
		"bad magic":   append([]byte{0, 0, 0, 0}, good[4:]...),
		"long body":   good[:len(good)-1],
		"extra bytes": append(append([]byte(nil), good...), 'x'),
		"flags":       func() []byte { b := append([]byte(nil), good...); b[12] = 1; return b }(),
	}
	for name, msg := range cases {
		if _, err := Parse(msg); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: got %v, want ErrMalformed", name, err)
		}
	}
}

func TestUnknownFieldsIgnored(t *testing.T) {
	msg, _ := Marshal(TypeStopped, map[string]any{"session": 3, "from_the_future": []int{1, 2}})
	h, err := Parse(msg)
	if err != nil {
		t.Fatal(err)
	}
	var s Stopped
	if err := h.Decode(&s); err != nil || s.Session != 3 {
		t.Fatalf("%+v %v", s, err)
	}
}

func TestSelect(t *testing.T) {
	ev := func(p, n string, l catalog.Level) *catalog.Event {
		return &catalog.Event{Provider: p, Name: n, Level: l}
	}
	ps := []Pattern{{Glob: "http:*"}, {Glob: "db:*", Level: "warning"}, {Glob: "http:debug_*", Exclude: true}}
	cases := []struct {
		e    *catalog.Event
		want bool
	}{
		{ev("http", "request", catalog.LevelDebug), true},
		{ev("http", "debug_dump", catalog.LevelInfo), false},
		{ev("db", "slow", catalog.LevelWarning), true},
		{ev("db", "query", catalog.LevelInfo), false},
		{ev("cache", "hit", catalog.LevelInfo), false},
	}
	for _, c := range cases {
		if got := Select(ps, c.e); got != c.want {
			t.Errorf("%s at %v: selected %v, want %v", c.e.FullName(), c.e.Level, got, c.want)
		}
	}
	if err := (Pattern{Glob: "["}).Check(); err == nil {
		t.Error("bad glob accepted")
	}
	if err := (Pattern{Glob: "*", Level: "loud"}).Check(); err == nil {
		t.Error("bad level accepted")
	}
}

// FuzzParse: no input makes Parse or Decode panic, and what parses
// re-encodes to the same bytes.
func FuzzParse(f *testing.F) {
	for _, m := range []struct {
		t Type
		v any
	}{
		{TypeHello, Hello{Version: 1, PID: 9, Name: "x"}},
		{TypeRingReady, RingReady{Session: 1, IDs: []IDMap{{Local: 0, EventID: 3}}}},
		{TypeRequest, Request{Op: OpEnable, Session: "s", Pattern: Pattern{Glob: "*"}}},
		{TypeEvents, Events{Catalog: []byte("UTCG")}},
	} {
		b, _ := Marshal(m.t, m.v)
		f.Add(b)
	}
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, msg []byte) {
		h, err := Parse(msg)
		if err != nil {
			return
		}
		for _, v := range []any{&Hello{}, &Welcome{}, &Events{}, &SessionOpen{}, &RingReady{}, &RingIDs{}, &Stopped{}, &Request{}, &Response{}, &Error{}} {
			h.Decode(v)
		}
		if !bytes.Equal(msg[HeaderSize:], h.Body) {
			t.Fatal("body is not the datagram's tail")
		}
	})
}
