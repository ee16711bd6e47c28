package tracedir

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
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
