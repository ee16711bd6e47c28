package ftrace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// DefaultRoot is where tracefs is normally mounted.
const DefaultRoot = "/sys/kernel/tracing"

// legacyRoot is where older systems expose tracefs, through debugfs.
const legacyRoot = "/sys/kernel/debug/tracing"

// tracefsMagic is TRACEFS_MAGIC from include/uapi/linux/magic.h.
const tracefsMagic = 0x74726163

// ErrNoTracefs is returned when no tracefs is mounted. Its message says how
// to mount one.
var ErrNoTracefs = errors.New("ftrace: tracefs is not mounted at " + DefaultRoot +
	" (mount it as root with: mount -t tracefs nodev " + DefaultRoot + "; the kernel needs CONFIG_TRACING)")

// isTracefs reports whether dir is the root of a mounted tracefs.
func isTracefs(dir string) bool {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false
	}
	return st.Type == tracefsMagic
}

// Root returns the directory where tracefs is mounted: [DefaultRoot], or
// /sys/kernel/debug/tracing on systems that only have it there. It returns
// [ErrNoTracefs] when there is none.
func Root() (string, error) {
	for _, dir := range []string{DefaultRoot, legacyRoot} {
		if isTracefs(dir) {
			return dir, nil
		}
	}
	return "", ErrNoTracefs
}

// Mount mounts tracefs at [DefaultRoot] unless a tracefs is already there,
// and returns the directory. It needs CAP_SYS_ADMIN; tests and tools call it,
// the tracers never mount anything themselves.
func Mount() (string, error) {
	if isTracefs(DefaultRoot) {
		return DefaultRoot, nil
	}
	if _, err := os.Stat(DefaultRoot); err != nil {
		return "", fmt.Errorf("mount tracefs: %w (is sysfs mounted at /sys, and the kernel built with CONFIG_TRACING?)", err)
	}
	if err := unix.Mount("nodev", DefaultRoot, "tracefs", 0, ""); err != nil {
		return "", fmt.Errorf("mount tracefs at %s: %w", DefaultRoot, err)
	}
	return DefaultRoot, nil
}

// instanceDir returns the directory of the named instance under root, or
// root itself for "".
func instanceDir(root, name string) (string, error) {
	if name == "" {
		return root, nil
	}
	if name != filepath.Base(name) || name == "." || name == ".." {
		return "", fmt.Errorf("ftrace: bad instance name %q: want one path element", name)
	}
	return filepath.Join(root, "instances", name), nil
}
