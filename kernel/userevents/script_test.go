package userevents

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestKernelVMScript runs scripts/kernel-vm, which boots a kernel with
// user_events under qemu and runs this package's VM tests there. It takes
// about 5 s with the kernel cached (/var/cache/usertrace) and 5 to 6 minutes
// without (building the kernel), so it runs only when asked:
//
//	USERTRACE_KERNEL_VM=1 go test -run KernelVMScript -timeout 30m ./kernel/userevents
func TestKernelVMScript(t *testing.T) {
	if os.Getenv("USERTRACE_KERNEL_VM") != "1" {
		t.Skip("skipping: set USERTRACE_KERNEL_VM=1 to build (or reuse) a kernel with user_events and run the VM tests under qemu (needs root, apt and ~2 GB in /var/tmp the first time)")
	}
	if inVM {
		t.Skip("skipping: already in the VM")
	}
	script, err := filepath.Abs("../../scripts/kernel-vm")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script)
	cmd.Dir = "../.."
	out, err := cmd.CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("scripts/kernel-vm: %v", err)
	}
}
