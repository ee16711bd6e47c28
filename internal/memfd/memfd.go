// Package memfd owns shared-memory mappings backed by a sealed memfd, and
// passes their descriptors between processes over unix sockets (SCM_RIGHTS).
//
// The creator makes the memfd, sizes it and seals it against shrinking and
// growing ([RequiredSeals]); a receiver checks those seals and the size with
// [Open] before it maps. A sealed size is what makes the mapping safe for a
// reader that does not trust the writer: the file can never be truncated
// under the mapping, so no access within the mapped length can SIGBUS.
//
// Each mapping is owned by a [Mapping]; Close unmaps it and closes the fd, and
// a cleanup backstop unmaps a Mapping that was dropped without Close.
package memfd

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// RequiredSeals are the seals that [Create] sets and [Open] insists on:
// the size can neither shrink nor grow, and nobody can change the seals.
// F_SEAL_WRITE is not among them: the ring is written by both sides.
const RequiredSeals = unix.F_SEAL_SHRINK | unix.F_SEAL_GROW | unix.F_SEAL_SEAL

// ErrNotSealed is returned (wrapped) by [Open] when the descriptor is not a
// memfd carrying [RequiredSeals].
var ErrNotSealed = errors.New("memfd: not a memfd sealed against shrink, grow and seal changes")

// ErrSize is returned (wrapped) by [Open] when the file's size is not the
// expected one.
var ErrSize = errors.New("memfd: wrong size")

// Mapping is a shared mapping of a whole sealed memfd.
type Mapping struct {
	f    *os.File
	data []byte

	once    sync.Once
	cleanup runtime.Cleanup
}

// Create makes a memfd called name of the given size, seals it with
// [RequiredSeals] and maps it read-write. The memory is zeroed.
func Create(name string, size int) (*Mapping, error) {
	if size <= 0 {
		return nil, fmt.Errorf("create memfd %s: size %d must be positive", name, size)
	}
	// MFD_NOEXEC_SEAL (Linux 6.3) avoids the kernel's "called without
	// MFD_EXEC or MFD_NOEXEC_SEAL" warning; older kernels reject the flag.
	fd, err := unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_NOEXEC_SEAL)
	if err == unix.EINVAL {
		fd, err = unix.MemfdCreate(name, unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return nil, fmt.Errorf("create memfd %s: %w", name, err)
	}
	f := os.NewFile(uintptr(fd), "memfd:"+name)
	if err := unix.Ftruncate(fd, int64(size)); err != nil {
		f.Close()
		return nil, fmt.Errorf("size memfd %s to %d bytes: %w", name, size, err)
	}
	if _, err := unix.FcntlInt(uintptr(fd), unix.F_ADD_SEALS, RequiredSeals); err != nil {
		f.Close()
		return nil, fmt.Errorf("seal memfd %s: %w", name, err)
	}
	return mapFile(f, size)
}

// Open checks that f is a memfd sealed with at least [RequiredSeals] and of
// exactly size bytes (or, if size is 0, of any size that is a positive whole
// number of pages and at most maxSize), then maps it read-write. On success
// the Mapping owns f; on failure f is left open for the caller.
//
// Errors: [ErrNotSealed] or [ErrSize] (wrapped), or the system call's error.
func Open(f *os.File, size, maxSize int) (*Mapping, error) {
	seals, err := unix.FcntlInt(f.Fd(), unix.F_GET_SEALS, 0)
	if err != nil {
		return nil, fmt.Errorf("open shared buffer %s: %w (F_GET_SEALS: %v)", f.Name(), ErrNotSealed, err)
	}
	if seals&RequiredSeals != RequiredSeals {
		return nil, fmt.Errorf("open shared buffer %s: %w (seals %#x, want %#x)", f.Name(), ErrNotSealed, seals, RequiredSeals)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, fmt.Errorf("open shared buffer %s: %w", f.Name(), err)
	}
	switch {
	case size > 0 && st.Size != int64(size):
		return nil, fmt.Errorf("open shared buffer %s: %w: %d bytes, want %d", f.Name(), ErrSize, st.Size, size)
	case size == 0 && (st.Size <= 0 || st.Size > int64(maxSize) || st.Size%int64(os.Getpagesize()) != 0):
		return nil, fmt.Errorf("open shared buffer %s: %w: %d bytes, want a whole number of pages up to %d", f.Name(), ErrSize, st.Size, maxSize)
	}
	return mapFile(f, int(st.Size))
}

func mapFile(f *os.File, size int) (*Mapping, error) {
	data, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("map shared buffer %s: %w", f.Name(), err)
	}
	m := &Mapping{f: f, data: data}
	// Backstop: a Mapping dropped without Close still gets unmapped.
	m.cleanup = runtime.AddCleanup(m, func(d []byte) { unix.Munmap(d) }, data)
	return m, nil
}

// Bytes returns the mapped memory. It is valid until Close.
func (m *Mapping) Bytes() []byte { return m.data }

// File returns the memfd, to be sent to another process with [SendFile].
func (m *Mapping) File() *os.File { return m.f }

// Close unmaps the memory and closes the fd. Later calls do nothing.
func (m *Mapping) Close() error {
	var err error
	m.once.Do(func() {
		m.cleanup.Stop()
		err = unix.Munmap(m.data)
		if cerr := m.f.Close(); err == nil {
			err = cerr
		}
		m.data = nil
	})
	return err
}
