package tracedir

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/usertrace/usertrace/catalog"
	"github.com/usertrace/usertrace/ctf"
)

// TestDigits holds appendDec to strconv.AppendUint and append9 to %09d,
// at every length and its edges, and at random values.
func TestDigits(t *testing.T) {
	check := func(v uint64) {
		for _, pre := range [][]byte{nil, []byte("x="), make([]byte, 5, 7)} {
			got := appendDec(append([]byte(nil), pre...)[:len(pre):len(pre)], v)
			if want := strconv.AppendUint(append([]byte(nil), pre...), v, 10); string(got) != string(want) {
				t.Fatalf("appendDec(%q, %d) = %q, want %q", pre, v, got, want)
			}
		}
		if v < 1e9 {
			if got, want := string(append9([]byte("."), v)), fmt.Sprintf(".%09d", v); got != want {
				t.Fatalf("append9(%d) = %q, want %q", v, got, want)
			}
		}
	}
	p := uint64(1)
	for range 20 {
		for _, d := range []uint64{p - 1, p, p + 1, 2*p - 1, 9 * p, 9*p + p - 1} {
			check(d)
		}
		p *= 10
	}
	check(1<<64 - 1)
	check(1 << 63)
	r := rand.New(rand.NewPCG(5, 6))
	for range 200000 {
		check(r.Uint64() >> r.IntN(64))
	}
	for v := range uint64(100000) {
		check(v)
	}
}

// TestTimeText holds the time and delta text, with its caches and fast
// paths (the second, the microsecond, deltas below 1 µs), to a reference
// built with package time and fmt, over walls close together and far apart.
func TestTimeText(t *testing.T) {
	tr := &Trace{label: []byte("a/1")}
	desc := &catalog.Event{Provider: "p", Name: "e"}
	loc := time.FixedZone("X", -3*3600)
	r := rand.New(rand.NewPCG(7, 8))
	for _, tf := range []TimeFormat{TimeDate, TimeClock, TimeUnix} {
		var out bytes.Buffer
		tw := newTextWriter(&out, TextOptions{Time: tf, Location: loc})
		var want strings.Builder
		wall := time.Date(2026, 11, 25, 13, 31, 2, 999998000, time.UTC).UnixNano()
		prev := wall
		for i := range 20000 {
			switch r.IntN(6) {
			case 0:
				wall += int64(r.IntN(1000))
			case 1:
				wall += int64(r.IntN(3000))
			case 2:
				wall += int64(r.IntN(2e9))
			case 3:
				wall -= int64(r.IntN(2000))
			case 4:
				wall += int64(r.IntN(20e9))
			case 5:
				wall += 1000 - wall%1000 // a microsecond's first ns
			}
			tw.event(&Event{Trace: tr, Desc: desc, Wall: wall})
			tm := time.Unix(0, wall).In(loc)
			switch tf {
			case TimeDate:
				want.WriteString(tm.Format("[2006-01-02 15:04:05.000000000] "))
			case TimeClock:
				want.WriteString(tm.Format("[15:04:05.000000000] "))
			case TimeUnix:
				fmt.Fprintf(&want, "[%d.%09d] ", wall/1e9, wall%1e9)
			}
			if i == 0 {
				want.WriteString("(+?.?????????) ")
			} else {
				d, sign := wall-prev, "+"
				if d < 0 {
					d, sign = -d, "-"
				}
				fmt.Fprintf(&want, "(%s%d.%09d) ", sign, d/1e9, d%1e9)
			}
			prev = wall
			want.WriteString("a/1 p:e\n")
		}
		tw.flush()
		if got := out.String(); got != want.String() {
			gl, wl := strings.Split(got, "\n"), strings.Split(want.String(), "\n")
			for i := range min(len(gl), len(wl)) {
				if gl[i] != wl[i] {
					t.Fatalf("%v: line %d:\n got %q\nwant %q", tf, i, gl[i], wl[i])
				}
			}
			t.Fatalf("%v: %d lines, want %d", tf, len(gl), len(wl))
		}
	}
}

// TestWallParts: the reader's split of the clock conversion gives what
// ctf.Clock.Wall gives.
func TestWallParts(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	clocks := []ctf.Clock{{}, ctf.NSClock(1795613462123456789), ctf.NSClock(-5), {Freq: 2994374000, OffsetS: 1795600000, Offset: 123456789, TSC: true}}
	for range 200 {
		clocks = append(clocks, ctf.Clock{Freq: r.Uint64N(5e9) + 1, OffsetS: r.Int64N(4e9) - 1e9, Offset: r.Uint64()})
		clocks = append(clocks, ctf.NewClock(r.Uint64N(5e9)+1, r.Uint64(), r.Int64(), true))
	}
	for _, c := range clocks {
		base, ticks := wallParts(c)
		for _, v := range []uint64{0, 1, 1 << 63, 1<<64 - 1, r.Uint64(), r.Uint64() >> 20, r.Uint64() >> 40} {
			if got, want := base+ticks.Wall(v), c.Wall(v); got != want {
				t.Fatalf("clock %+v at %d: %d, Wall %d", c, v, got, want)
			}
		}
	}
}
