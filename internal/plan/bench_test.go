package plan

import (
	"reflect"
	"testing"
	"unsafe"

	"github.com/usertrace/usertrace/internal/noescape"
)

// BenchmarkEncode compares the specialized encoder with the general loop on
// the benchmark event (a uint64, a uint32 and a 16-byte string), and times
// the two-segment shape (scalar, string, scalar, string).
func BenchmarkEncode(b *testing.B) {
	two, err := Compile(reflect.TypeFor[twoSegs]())
	if err != nil {
		b.Fatal(err)
	}
	tv := twoSegs{A: 1, S: "GET", B: 200, T: "/index.html"}
	b.Run("two_strings", func(b *testing.B) {
		var buf [256]byte
		b.ReportAllocs()
		for b.Loop() {
			two.Encode(buf[:], unsafe.Pointer(&tv))
		}
	})
	p, err := Compile(reflect.TypeFor[runString]())
	if err != nil {
		b.Fatal(err)
	}
	general := *p
	general.fast = nil
	v := runString{A: 1, B: 2, S: "sixteen bytes!!!"}
	var buf [256]byte
	b.Run("specialized_direct", func(b *testing.B) {
		// As the root package's emit calls it: the closure itself.
		f := p.Fast()
		b.ReportAllocs()
		for b.Loop() {
			f(noescape.Pointer(unsafe.Pointer(&buf)), noescape.Pointer(unsafe.Pointer(&v)), len(buf)-p.FixedSize())
		}
	})
	for _, c := range []struct {
		name string
		p    *Plan
	}{{"specialized", p}, {"general", &general}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				c.p.Encode(buf[:], unsafe.Pointer(&v))
			}
		})
	}
}
