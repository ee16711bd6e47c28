package plan

import (
	"bytes"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"unsafe"
)

type onlyScalars struct {
	A uint64
	B int16
	C int8
}

type runString struct {
	A uint64
	B uint32
	S string
}

type stringFirst struct {
	S string
	A uint32
}

type twoSegs struct {
	A int8
	S string
	B uint16
	T string
}

type twoSegsNoTail struct {
	S string
	B uint64
}

// encodeBoth encodes v with the specialized encoder and with the general
// loop, into buffers of the given size.
func encodeBoth(t *testing.T, p *Plan, v unsafe.Pointer, size int) (fast, slow []byte, okFast, okSlow bool) {
	t.Helper()
	general := *p
	general.fast = nil
	b1, b2 := make([]byte, size), make([]byte, size)
	n1, ok1 := p.Encode(b1, v)
	n2, ok2 := general.Encode(b2, v)
	return b1[:n1], b2[:n2], ok1, ok2
}

func randString(r *rand.Rand) string {
	var b strings.Builder
	for n := r.IntN(40); n > 0; n-- {
		c := byte('a' + r.IntN(26))
		if r.IntN(30) == 0 {
			c = 0 // a NUL: the string is cut there
		}
		b.WriteByte(c)
	}
	return b.String()
}

// The specialized encoders write exactly what the general loop writes, for
// every shape they take, including strings with NULs and buffers too small.
func TestSpecializedMatchesGeneral(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	check := func(name string, typ reflect.Type, v unsafe.Pointer) {
		p, err := Compile(typ)
		if err != nil {
			t.Fatal(err)
		}
		if p.fast == nil {
			t.Fatalf("%s: no specialized encoder", name)
		}
		for _, size := range []int{256, p.Size(v), p.Size(v) - 1, p.fixed} {
			if size < p.fixed {
				continue
			}
			f, s, okF, okS := encodeBoth(t, p, v, size)
			if okF != okS || (okF && !bytes.Equal(f, s)) {
				t.Fatalf("%s, buffer %d: specialized %x (%v), general %x (%v)", name, size, f, okF, s, okS)
			}
			if okF && len(f) != p.Size(v) {
				t.Fatalf("%s: encoded %d bytes, Size says %d", name, len(f), p.Size(v))
			}
		}
	}
	for i := 0; i < 500; i++ {
		a := onlyScalars{A: r.Uint64(), B: int16(r.Int()), C: int8(r.Int())}
		check("onlyScalars", reflect.TypeFor[onlyScalars](), unsafe.Pointer(&a))
		b := runString{A: r.Uint64(), B: r.Uint32(), S: randString(r)}
		check("runString", reflect.TypeFor[runString](), unsafe.Pointer(&b))
		c := stringFirst{S: randString(r), A: r.Uint32()}
		check("stringFirst", reflect.TypeFor[stringFirst](), unsafe.Pointer(&c))
		d := twoSegs{A: int8(r.Int()), S: randString(r), B: uint16(r.Int()), T: randString(r)}
		check("twoSegs", reflect.TypeFor[twoSegs](), unsafe.Pointer(&d))
		e := twoSegsNoTail{S: randString(r), B: r.Uint64()}
		check("twoSegsNoTail", reflect.TypeFor[twoSegsNoTail](), unsafe.Pointer(&e))
	}
}

func TestGeneralShapesAreNotSpecialized(t *testing.T) {
	type withBytes struct {
		A uint32
		B []byte
	}
	type threeStrings struct{ A, B, C string }
	type withBool struct{ A bool } // bools are normalized to 0 or 1 by the general loop
	for _, typ := range []reflect.Type{reflect.TypeFor[withBytes](), reflect.TypeFor[threeStrings](), reflect.TypeFor[withBool]()} {
		p, err := Compile(typ)
		if err != nil {
			t.Fatal(err)
		}
		if p.fast != nil {
			t.Errorf("%v got a specialized encoder", typ)
		}
	}
}
