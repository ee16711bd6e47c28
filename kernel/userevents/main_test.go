package userevents

import (
	"fmt"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/usertrace/usertrace/kernel/ftrace"
)

// inVM is set by scripts/kernel-vm on the kernel command line, which the
// kernel hands to /init as its environment.
var inVM = os.Getenv("USERTRACE_IN_VM") == "1"

// TestMain doubles as /init of the VM that scripts/kernel-vm boots: as
// process 1 it mounts what the tests need, runs them, prints one verdict
// line for the script and reboots (qemu runs with -no-reboot, so it exits).
func TestMain(m *testing.M) {
	if !inVM || os.Getpid() != 1 {
		os.Exit(m.Run())
	}
	code := 1
	defer func() {
		if e := recover(); e != nil {
			fmt.Printf("panic in init: %v\n", e)
			code = 1
		}
		if code == 0 {
			fmt.Println("USERTRACE-VM: PASS")
		} else {
			fmt.Printf("USERTRACE-VM: FAIL (exit %d)\n", code)
		}
		unix.Sync()
		// No ACPI in the tiny kernel: power-off would hang qemu, a reboot
		// ends it (-no-reboot).
		unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
		select {}
	}()
	for _, mnt := range []struct{ src, dir, fs string }{
		{"proc", "/proc", "proc"},
		{"sysfs", "/sys", "sysfs"},
	} {
		if err := unix.Mount(mnt.src, mnt.dir, mnt.fs, 0, ""); err != nil {
			fmt.Printf("mount %s: %v\n", mnt.dir, err)
			return
		}
	}
	if _, err := ftrace.Mount(); err != nil {
		fmt.Println(err)
		return
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("usertrace VM: Linux %s\n", unix.ByteSliceToString(uts.Release[:]))
	code = m.Run()
}
