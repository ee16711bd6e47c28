package ring

import (
	"fmt"
	"os"
	"strings"
	"testing"
)

// TestMain fails the run if the tests leak file descriptors or ring
// mappings (STYLE 14).
func TestMain(m *testing.M) {
	// Start the runtime's network poller first (its epoll and eventfd
	// descriptors stay open for the life of the process).
	if r, w, err := os.Pipe(); err == nil {
		r.Close()
		w.Close()
	}
	fds0, maps0 := fdCount(), ringMappings()
	code := m.Run()
	if code == 0 {
		if fds, maps := fdCount(), ringMappings(); fds > fds0 || maps > maps0 {
			fmt.Fprintf(os.Stderr, "leak: %d fds (was %d), %d ring mappings (was %d)\n", fds, fds0, maps, maps0)
			code = 1
		}
	}
	os.Exit(code)
}

func fdCount() int {
	d, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(d)
}

func ringMappings() int {
	b, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "memfd:usertrace-ring")
}
