package catalog

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestAppendText(t *testing.T) {
	tests := []struct {
		r    Record
		want string
	}{
		{Record{scalarsEvent(), scalarsPayload()},
			`test:scalars: b=true, i8=-8, i16=-16, i32=-32, i64=-9223372036854775808, u8=8, u16=16, u32=32, ` +
				`u64=18446744073709551615, f32=1.5, f64=-0.1, s="hé \"x\"\n", raw=0xdead00, dur=1.5ms, t=2026-01-02T03:04:05.5Z`},
		{Record{requestEvent(), requestPayload()},
			`http:request_done: method=POST(2), req.path="/index.html", req.hdr.n=3, req.hdr.sign=NEG(-1), req.size=4096, ` +
				`pair=[10, 20], deltas=[-1, 0, 300], flags=[], methods=[GET(1), 9, POST(2)], status=200`},
		{Record{deepEvent(), deepPayload()}, "test:deep: top" + strings.Repeat(".in", MaxDepth) + "=42"},
		{Record{emptyEvent(), nil}, "app:tick"},
		{Record{opaqueEvent(), []byte{1, 2}}, "future:thing: <opaque>"},
		{Record{}, "<no event>"},
		{Record{requestEvent(), requestPayload()[:20]},
			`http:request_done: method=POST(2), req.path="/index.html", req.hdr.n=3, <error: read payload of http:request_done: ` +
				`field req.hdr.sign at byte 15 of 20: value runs past the end of the payload: corrupt input>`},
		{Record{emptyEvent(), []byte{1}},
			`app:tick: <error: read payload of app:tick: byte 0 of 1: bytes left after the last field: corrupt input>`},
	}
	for _, tt := range tests {
		if got := string(tt.r.AppendText([]byte("> "))); got != "> "+tt.want {
			t.Errorf("got  %s\nwant > %s", got, tt.want)
		}
	}
}

func TestAppendValueText(t *testing.T) {
	r := Record{requestEvent(), requestPayload()}
	req, _ := r.Field("req")
	if got := string(AppendValueText(nil, req)); got != `{path="/index.html", hdr={n=3, sign=NEG(-1)}, size=4096}` {
		t.Errorf("struct: %s", got)
	}
	if got := string(AppendValueText(nil, Value{})); got != "<invalid>" {
		t.Errorf("zero: %s", got)
	}
	// Floats and unlabelled, unsigned enums.
	ev := &Event{Provider: "p", Name: "n", Fields: []Field{
		{"f", Type{Kind: Float32}},
		{"g", Type{Kind: Float64}},
		{"e", Type{Kind: Enum, Elem: &Type{Kind: Uint64}}},
		{"b", Type{Kind: Bytes}},
		{"d", Type{Kind: Sequence, Elem: &Type{Kind: Duration}}},
	}}
	var p []byte
	p = AppendFloat32(p, float32(math.Inf(-1)))
	p = AppendFloat64(p, 1e300)
	p = AppendUint64(p, math.MaxUint64)
	p = AppendBytes(p, nil)
	p = AppendUint32(p, 2)
	p = AppendDuration(p, -90*time.Minute)
	p = AppendDuration(p, 0)
	want := "p:n: f=-Inf, g=1e+300, e=18446744073709551615, b=0x, d=[-1h30m0s, 0s]"
	if got := string((Record{ev, p}).AppendText(nil)); got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
}

func TestAppendTextAllocs(t *testing.T) {
	if testing.CoverMode() != "" {
		t.Skip("coverage counters allocate")
	}
	recs := []Record{{scalarsEvent(), scalarsPayload()}, {requestEvent(), requestPayload()}}
	buf := make([]byte, 0, 1024)
	allocs := testing.AllocsPerRun(100, func() {
		for _, r := range recs {
			buf = r.AppendText(buf[:0])
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations, want 0", allocs)
	}
}

func TestAppendDuration(t *testing.T) {
	ds := []time.Duration{0, 1, -1, 999, 1000, 1001, 1500 * time.Microsecond, time.Second, -time.Second,
		59 * time.Second, time.Minute, time.Hour + time.Nanosecond, 100 * time.Hour, math.MaxInt64, math.MinInt64, math.MinInt64 + 1}
	for d := time.Duration(1); d > 0 && d < math.MaxInt64/7; d = d*7 + 3 {
		ds = append(ds, d, -d)
	}
	for _, d := range ds {
		if got, want := string(AppendDurationText(nil, d)), d.String(); got != want {
			t.Errorf("AppendDurationText(%d) = %s, want %s", int64(d), got, want)
		}
	}
}
