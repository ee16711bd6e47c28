package rt

import (
	"os"
	"strings"
)

// rdtsc reads the time-stamp counter. It is not ordered with anything: the
// CPU may execute it before earlier loads or after later ones.
//
//go:noescape
func rdtsc() uint64

// rdtscp reads the time-stamp counter after every earlier instruction has
// executed and every earlier load is globally visible (AMD APM and Intel SDM,
// RDTSCP).
//
//go:noescape
func rdtscp() uint64

//go:noescape
func cpuid(eaxArg, ecxArg uint32) (eax, ebx, ecx, edx uint32)

// tscMode is set once, at init, and never changes: the ring clock is the
// TSC. See [TicksAreTSC].
var tscMode = detectTSC()

// hasRDTSCP: CPUID 0x80000001 EDX bit 27. Checked separately so that a
// reader can read the TSC of a ring even when this process chose not to
// use it for its own rings.
var hasRDTSCP bool

// detectTSC decides whether the TSC can be the ring clock: the CPU says
// the TSC is invariant (constant rate, runs in every C- and P-state:
// CPUID 0x80000007 EDX bit 8, Linux's nonstop_tsc) and has RDTSCP, and the
// kernel's current clocksource is the TSC (then the kernel has checked
// that the TSCs of all CPUs are synchronized, and keeps checking). If the
// clocksource cannot be read (no /sys in a container), the CPUID bits
// decide. USERTRACE_CLOCK=monotonic forces CLOCK_MONOTONIC.
func detectTSC() bool {
	max, _, _, _ := cpuid(0x80000000, 0)
	if max < 0x80000007 {
		return false
	}
	_, _, _, d1 := cpuid(0x80000001, 0)
	hasRDTSCP = d1&(1<<27) != 0
	_, _, _, d7 := cpuid(0x80000007, 0)
	if d7&(1<<8) == 0 || !hasRDTSCP {
		return false
	}
	if os.Getenv("USERTRACE_CLOCK") == "monotonic" {
		return false
	}
	b, err := os.ReadFile("/sys/devices/system/clocksource/clocksource0/current_clocksource")
	if err == nil && strings.TrimSpace(string(b)) != "tsc" {
		return false
	}
	return true
}

// Ticks returns the ring clock. On amd64 with a usable TSC
// ([TicksAreTSC]) it is one unordered RDTSC (about 10 ns against 24 ns for
// Nanotime): a later call on the same thread may return a few ticks less
// than an earlier one, and it is ordered with no load or store; ring's
// writer clamps for that (docs/ring-abi.md, "Clock"). Otherwise it is
// [Nanotime].
func Ticks() uint64 {
	if tscMode {
		return rdtsc()
	}
	return uint64(Nanotime())
}

// TicksOrdered is [Ticks] read after every earlier load has completed
// (RDTSCP): it is not earlier than anything those loads observed.
func TicksOrdered() uint64 {
	if tscMode {
		return rdtscp()
	}
	return uint64(Nanotime())
}

// TicksAreTSC reports whether [Ticks] reads the TSC (else CLOCK_MONOTONIC
// in ns).
func TicksAreTSC() bool { return tscMode }

// TSC reads the TSC, ordered as [TicksOrdered], whatever this process
// chose for its own rings; ok is false where there is none (not amd64, or
// no RDTSCP).
func TSC() (ticks uint64, ok bool) {
	if !hasRDTSCP {
		return 0, false
	}
	return rdtscp(), true
}
