//go:build !amd64

package rt

// Ticks returns the ring clock: CLOCK_MONOTONIC in ns on this architecture
// (on amd64, the TSC when it is usable).
func Ticks() uint64 { return uint64(Nanotime()) }

// TicksOrdered is [Ticks]; Nanotime is ordered already.
func TicksOrdered() uint64 { return uint64(Nanotime()) }

// TicksAreTSC reports whether [Ticks] reads the TSC: never here.
func TicksAreTSC() bool { return false }

// TSC reads the x86 TSC: there is none here.
func TSC() (ticks uint64, ok bool) { return 0, false }
