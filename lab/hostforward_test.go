package lab

import (
	"slices"
	"testing"
)

// TestVMArgsHostForward: a VM gets a NIC only when ports are forwarded to
// it, on qemu's user network, with every forward and no boot ROM.
func TestVMArgsHostForward(t *testing.T) {
	vm := &VM{Kernel: "/k/vmlinux", Initrd: "/tmp/initrd.cpio", Memory: 512, CPUs: 1}
	if args := vm.args(); slices.Contains(args, "-netdev") || slices.Contains(args, "-device") {
		t.Errorf("no forward, but a NIC: %q", args)
	}
	vm.HostForward = []string{"tcp:127.0.0.1:18080-:9100", "tcp:127.0.0.1:18081-:8080"}
	args := vm.args()
	i := slices.Index(args, "-netdev")
	if i < 0 || args[i+1] != "user,id=net0,hostfwd=tcp:127.0.0.1:18080-:9100,hostfwd=tcp:127.0.0.1:18081-:8080" {
		t.Errorf("netdev: %q", args)
	}
	j := slices.Index(args, "-device")
	if j < 0 || args[j+1] != "virtio-net-pci,netdev=net0,romfile=" {
		t.Errorf("device: %q", args)
	}
}
