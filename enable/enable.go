// Package enable is the enable ABI of usertrace: one 32-bit word per event that
// says whether anything wants the event, kept apart from what the event looks
// like (that is package catalog, the description ABI).
//
// # Rules for extending this ABI
//
//  1. The word is a naturally aligned uint32 in a slab of words; an event's
//     enable id is its index in the slab and never changes while the process
//     lives. Words are never freed or moved (the kernel may hold their address).
//  2. Each bit has exactly one owner, and an owner changes only its own bits,
//     with atomic Or/And (single bits) or Add (the attachment count). Nobody
//     stores a whole word. Otherwise two owners racing lose each other's update.
//  3. The call site tests the whole word against zero: any bit set means
//     "run the enabled path". What each owner does then is its own business.
//  4. New owners take bits from the reserved range; the layout version
//     ([Version]) changes only if a bit changes meaning, never when a reserved
//     bit gets an owner.
//
// # Layout (version 1)
//
//	bit  31      KernelBit: owned by the kernel (Linux user_events sets and
//	             clears it in our memory; we only hand it the address)
//	bits 24..30  agent bits: claimed at run time by external agents (a debugger
//	             hook, a statedump trigger) through [ClaimBit]
//	bits  0..23  the number of in-process tracer attachments ([Word.Attach])
//
// The full description, with the reasoning, is docs/enable-abi.md.
package enable

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Version is the version of the bit layout described in the package comment.
const Version = 1

// Bit layout of a word.
const (
	// KernelBit is the bit that a kernel tracer (Linux user_events) owns.
	KernelBit = 31
	// FirstAgentBit and LastAgentBit bound the bits that [ClaimBit] hands out.
	FirstAgentBit = 24
	LastAgentBit  = 30
	// CountMask selects the count of in-process attachments.
	CountMask = 1<<FirstAgentBit - 1
	// AgentMask selects the agent bits.
	AgentMask = (1<<(LastAgentBit+1) - 1) &^ CountMask
	// KernelMask selects the kernel bit.
	KernelMask = 1 << KernelBit
)

// ID is an event's index in the slab: its enable id.
type ID uint32

// Word is one event's enable word. The zero Word is not usable: get words
// from [New].
type Word struct {
	v *atomic.Uint32
}

// Enabled reports whether any owner wants the event. It is one atomic load
// and is small enough to be inlined at the call site.
func (w Word) Enabled() bool { return w.v.Load() != 0 }

// Uint32 returns the word itself, for call sites that inline the enabled
// check: Go's inliner does not see through a method of an imported package
// from inside generic code instantiated elsewhere, so the root package's
// Event[T].Emit loads the word directly to stay under the inlining budget.
func (w Word) Uint32() *atomic.Uint32 { return w.v }

// Load returns the whole word.
func (w Word) Load() uint32 { return w.v.Load() }

// State decodes the word.
func (w Word) State() State { return Decode(w.v.Load()) }

// Addr returns the address of the word, for a kernel tracer that must be told
// where to set [KernelBit]. The word never moves.
func (w Word) Addr() uintptr { return uintptr(unsafe.Pointer(w.v)) }

// ErrTooManyAttachments is returned when the attachment count would overflow
// its 24 bits.
var ErrTooManyAttachments = errors.New("enable: too many attachments to one event (limit 16777215)")

// Attach adds one in-process attachment. Pair it with [Word.Detach].
func (w Word) Attach() error {
	for {
		old := w.v.Load()
		if old&CountMask == CountMask {
			return ErrTooManyAttachments
		}
		// CompareAndSwap rather than Add so that a full count never carries
		// into the agent bits, which belong to somebody else (rule 2).
		if w.v.CompareAndSwap(old, old+1) {
			return nil
		}
	}
}

// Detach removes one in-process attachment added by [Word.Attach]. It panics
// if there is none: that is a bug in the caller's bookkeeping, and carrying on
// would borrow from the agent bits.
func (w Word) Detach() {
	for {
		old := w.v.Load()
		if old&CountMask == 0 {
			panic("enable: Detach without Attach")
		}
		if w.v.CompareAndSwap(old, old-1) {
			return
		}
	}
}

// State is a decoded enable word.
type State struct {
	Kernel      bool   // KernelBit is set
	Agents      uint8  // agent bits, bit 0 = FirstAgentBit
	Attachments uint32 // in-process attachments
}

// Decode splits a raw word into its owners' parts.
func Decode(v uint32) State {
	return State{
		Kernel:      v&KernelMask != 0,
		Agents:      uint8((v & AgentMask) >> FirstAgentBit),
		Attachments: v & CountMask,
	}
}

// The slab. Words live in chunks that are allocated once and never freed, so
// a word's address is stable for the life of the process (rule 1). A chunk is
// 4 KiB: a program with ten events touches one page, one with 100,000 touches
// 98, and no event costs a page of its own.
const chunkWords = 1024

type chunk [chunkWords]atomic.Uint32

var slab struct {
	mu     sync.Mutex
	chunks atomic.Pointer[[]*chunk] // copy-on-write, so Lookup takes no lock
	n      uint32                   // words handed out; guarded by mu
}

// New allocates a fresh word, all bits clear, and returns it with its id.
func New() (ID, Word) {
	slab.mu.Lock()
	defer slab.mu.Unlock()
	var cs []*chunk
	if p := slab.chunks.Load(); p != nil {
		cs = *p
	}
	id := slab.n
	if int(id/chunkWords) == len(cs) {
		grown := make([]*chunk, len(cs)+1)
		copy(grown, cs)
		grown[len(cs)] = new(chunk)
		cs = grown
		slab.chunks.Store(&cs)
	}
	slab.n++
	return ID(id), Word{v: &cs[id/chunkWords][id%chunkWords]}
}

// Len returns how many words exist. Ids 0 to Len()-1 are valid.
func Len() int {
	slab.mu.Lock()
	defer slab.mu.Unlock()
	return int(slab.n)
}

// Lookup returns the word with the given id, for a tracer that knows an event
// only by its id and needs nothing of its description.
func Lookup(id ID) (Word, bool) {
	slab.mu.Lock()
	n := slab.n
	slab.mu.Unlock()
	if uint32(id) >= n {
		return Word{}, false
	}
	cs := *slab.chunks.Load()
	return Word{v: &cs[id/chunkWords][id%chunkWords]}, true
}

// Bit is an agent bit claimed with [ClaimBit]. Its owner sets and clears it
// on any word; nobody else touches it.
type Bit struct {
	n    uint8
	name string
}

var claims struct {
	mu    sync.Mutex
	owner [LastAgentBit + 1]string
}

// ErrNoFreeBit is returned by [ClaimBit] when every agent bit is taken.
var ErrNoFreeBit = fmt.Errorf("enable: all %d agent bits are claimed", LastAgentBit-FirstAgentBit+1)

// ClaimBit takes a free agent bit for the named owner. Release it with
// [Bit.Release] when the agent goes away.
func ClaimBit(owner string) (*Bit, error) {
	claims.mu.Lock()
	defer claims.mu.Unlock()
	for n := FirstAgentBit; n <= LastAgentBit; n++ {
		if claims.owner[n] == "" {
			if owner == "" {
				owner = "anonymous"
			}
			claims.owner[n] = owner
			return &Bit{n: uint8(n), name: owner}, nil
		}
	}
	return nil, ErrNoFreeBit
}

// Index returns the bit's position in the word (24 to 30).
func (b *Bit) Index() int { return int(b.n) }

// Mask returns the bit as a mask.
func (b *Bit) Mask() uint32 { return 1 << b.n }

// Set sets the bit in w.
func (b *Bit) Set(w Word) { w.v.Or(b.Mask()) }

// Clear clears the bit in w.
func (b *Bit) Clear(w Word) { w.v.And(^b.Mask()) }

// IsSet reports whether the bit is set in w.
func (b *Bit) IsSet(w Word) bool { return w.v.Load()&b.Mask() != 0 }

// Release clears the bit in every word and gives it back.
func (b *Bit) Release() {
	for id := 0; id < Len(); id++ {
		if w, ok := Lookup(ID(id)); ok {
			b.Clear(w)
		}
	}
	claims.mu.Lock()
	claims.owner[b.n] = ""
	claims.mu.Unlock()
}

// String names the bit and its owner.
func (b *Bit) String() string { return fmt.Sprintf("bit %d (%s)", b.n, b.name) }
