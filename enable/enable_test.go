package enable_test

import (
	"sync"
	"testing"
	"unsafe"

	"github.com/usertrace/usertrace/enable"
)

func TestLayoutMasks(t *testing.T) {
	if enable.CountMask != 0x00ffffff || enable.AgentMask != 0x7f000000 || enable.KernelMask != 0x80000000 {
		t.Fatalf("masks %#x %#x %#x: the documented layout changed; bump enable.Version and docs/enable-abi.md",
			enable.CountMask, enable.AgentMask, enable.KernelMask)
	}
	if enable.CountMask|enable.AgentMask|enable.KernelMask != 0xffffffff ||
		enable.CountMask&enable.AgentMask != 0 || enable.AgentMask&enable.KernelMask != 0 {
		t.Fatal("owners' bits overlap or leave gaps")
	}
}

func TestWordsAreAlignedStableAndPacked(t *testing.T) {
	ids := make([]enable.ID, 3000)
	addrs := make([]uintptr, len(ids))
	for i := range ids {
		id, w := enable.New()
		ids[i], addrs[i] = id, w.Addr()
		if w.Addr()%4 != 0 {
			t.Fatalf("word %d at %#x is not 4-byte aligned", id, w.Addr())
		}
		if w.Load() != 0 {
			t.Fatalf("fresh word %d is %#x", id, w.Load())
		}
	}
	for i := range ids {
		w, ok := enable.Lookup(ids[i])
		if !ok || w.Addr() != addrs[i] {
			t.Fatalf("word %d moved or vanished", ids[i])
		}
		// Consecutive ids in one chunk are adjacent: one slab, not a page each.
		if i > 0 && ids[i] == ids[i-1]+1 && ids[i]%1024 != 0 && addrs[i]-addrs[i-1] != unsafe.Sizeof(uint32(0)) {
			t.Fatalf("words %d and %d are %d bytes apart", ids[i-1], ids[i], addrs[i]-addrs[i-1])
		}
	}
	if _, ok := enable.Lookup(enable.ID(enable.Len())); ok {
		t.Fatal("Lookup past the end succeeded")
	}
}

// Owners never disturb each other's bits, even racing.
func TestOwnersDoNotInterfere(t *testing.T) {
	_, w := enable.New()
	bit, err := enable.ClaimBit("test")
	if err != nil {
		t.Fatal(err)
	}
	defer bit.Release()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			for i := 0; i < 10000; i++ {
				if err := w.Attach(); err != nil {
					t.Error(err)
					return
				}
				w.Detach()
			}
		}()
		go func() {
			defer wg.Done()
			for i := 0; i < 10000; i++ {
				bit.Set(w)
				bit.Clear(w)
			}
		}()
	}
	wg.Wait()
	if w.Load() != 0 {
		t.Fatalf("word %#x after balanced updates", w.Load())
	}
	bit.Set(w)
	if err := w.Attach(); err != nil {
		t.Fatal(err)
	}
	st := w.State()
	if st.Attachments != 1 || st.Agents != 1<<(bit.Index()-enable.FirstAgentBit) || st.Kernel {
		t.Fatalf("state %+v", st)
	}
	w.Detach()
}

func TestClaimBitsRunOut(t *testing.T) {
	var bits []*enable.Bit
	defer func() {
		for _, b := range bits {
			b.Release()
		}
	}()
	for {
		b, err := enable.ClaimBit("greedy")
		if err != nil {
			if err != enable.ErrNoFreeBit {
				t.Fatal(err)
			}
			break
		}
		if b.Index() < enable.FirstAgentBit || b.Index() > enable.LastAgentBit {
			t.Fatalf("claimed %v outside the agent range", b)
		}
		bits = append(bits, b)
	}
	if len(bits) != enable.LastAgentBit-enable.FirstAgentBit+1 {
		t.Fatalf("claimed %d bits", len(bits))
	}
	// A released bit is cleared everywhere and can be claimed again.
	_, w := enable.New()
	bits[0].Set(w)
	bits[0].Release()
	if w.Load() != 0 {
		t.Fatalf("released bit still set: %#x", w.Load())
	}
	b, err := enable.ClaimBit("again")
	if err != nil {
		t.Fatal(err)
	}
	bits[0] = b
}

func TestDetachWithoutAttachPanics(t *testing.T) {
	_, w := enable.New()
	defer func() {
		if recover() == nil {
			t.Fatal("Detach on a zero count did not panic")
		}
	}()
	w.Detach()
}
