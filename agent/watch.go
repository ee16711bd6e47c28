package agent

import (
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// fallbackWait bounds a wait when inotify is unavailable or a watch cannot be
// placed; with inotify, a new socket is noticed as soon as it is created.
const fallbackWait = 5 * time.Second

// waitForSocket returns when sock may have appeared: something was created,
// moved or changed in its directory (or, if the directory does not exist yet,
// in its nearest existing ancestor), or fallbackWait passed. It does not poll.
// stale says the socket existed but nobody accepted on it: then only a
// change (the daemon recreating it) ends the wait.
func waitForSocket(dir, sock string, stale bool) {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		time.Sleep(fallbackWait)
		return
	}
	f := os.NewFile(uintptr(fd), "inotify") // pollable: Read parks the goroutine
	defer f.Close()

	// Watch the directory, or the nearest ancestor that exists.
	watched := false
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := unix.InotifyAddWatch(fd, d, unix.IN_CREATE|unix.IN_MOVED_TO|unix.IN_ATTRIB|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF); err == nil {
			watched = true
			break
		}
		if d == filepath.Dir(d) {
			break
		}
	}
	if !watched {
		time.Sleep(fallbackWait)
		return
	}
	// The socket may have appeared before the watch was in place.
	if _, err := os.Stat(sock); err == nil && !stale {
		return
	}
	f.SetReadDeadline(time.Now().Add(fallbackWait))
	var buf [4096]byte
	f.Read(buf[:]) // any event, or the deadline: look again
}
