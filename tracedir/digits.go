package tracedir

import (
	"encoding/binary"
	"math/bits"
)

// Decimal digits eight at a time, in a uint64 (SWAR): the digit-pair
// table loop of appendDec was a quarter of WriteText's profile for the
// benchmark event's 16-digit uint64.

// digits8 returns x < 1e8 as eight decimal digits, 0-9 (not ASCII), the
// first in the low byte: little-endian bytes in text order.
func digits8(x uint32) uint64 {
	// Two 4-digit lanes of 32 bits (the first digits in the low lane),
	// then four 2-digit lanes of 16 bits, then eight 1-digit lanes: each
	// step divides by a small constant with a multiply and a shift that
	// are exact on its range (x/100 = x*10486>>20 for x < 10^4, x/10 =
	// x*103>>10 for x < 100).
	v := uint64(x/10000) | uint64(x%10000)<<32
	q := (v * 10486 >> 20) & 0x0000007f0000007f
	v = q | (v-q*100)<<16
	q = (v * 103 >> 10) & 0x000f000f000f000f
	return q | (v-q*10)<<8
}

const asciiZeros = 0x3030303030303030

// room returns b with at least n bytes of capacity after its length.
func room(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), 2*cap(b)+n)
		copy(nb, b)
		return nb
	}
	return b
}

// appendDec appends v in decimal, as strconv.AppendUint(b, v, 10) does.
func appendDec(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, byte(v)+'0')
	}
	b = room(b, 24)
	l := len(b)
	d := b[l : l+24]
	var n int
	if v < 1e8 {
		n = putLeading(d, uint32(v))
	} else if hi := v / 1e8; hi < 1e8 {
		n = putLeading(d, uint32(hi))
		binary.LittleEndian.PutUint64(d[n:], digits8(uint32(v-hi*1e8))+asciiZeros)
		n += 8
	} else {
		top := hi / 1e8 // below 1845
		n = putLeading(d, uint32(top))
		binary.LittleEndian.PutUint64(d[n:], digits8(uint32(hi-top*1e8))+asciiZeros)
		binary.LittleEndian.PutUint64(d[n+8:], digits8(uint32(v-hi*1e8))+asciiZeros)
		n += 16
	}
	return b[:l+n]
}

// putLeading writes 0 < x < 1e8 in decimal without leading zeros at d[0:],
// with 8 bytes of room, and returns how many digits it wrote.
func putLeading(d []byte, x uint32) int {
	v := digits8(x)
	z := bits.TrailingZeros64(v) / 8 // leading zero digits (x > 0: z < 8)
	binary.LittleEndian.PutUint64(d, v>>(8*z)+asciiZeros)
	return 8 - z
}

// append9 writes v < 1e9 as exactly nine digits.
func append9(b []byte, v uint64) []byte {
	v %= 1e9
	b = room(b, 9)
	l := len(b)
	d := b[l : l+9]
	hi := v / 1e8
	d[0] = byte(hi) + '0'
	binary.LittleEndian.PutUint64(d[1:], digits8(uint32(v-hi*1e8))+asciiZeros)
	return b[:l+9]
}

func appendUint(b []byte, v uint64) []byte {
	if v < 10 {
		return append(b, byte(v)+'0')
	}
	return appendDec(b, v)
}
