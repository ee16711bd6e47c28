package ust

import (
	"os"
	"testing"
)

// TestMain turns the test binary into a child process when the tests that
// re-execute it ask for one. The children run here, after package
// initialization, because the runtime locks the main goroutine to the main
// thread during init (a locked goroutine hands its P over through futex
// calls when it is preempted, which would spoil the system call count).
func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		crashChild(path) // never returns
	}
	if os.Getenv(syscallEnv) != "" {
		syscallChild() // never returns
	}
	if spec := os.Getenv(drainEnv); spec != "" {
		drainChild(spec) // never returns
	}
	os.Exit(m.Run())
}
