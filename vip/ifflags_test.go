package vip

import (
	"errors"
	"net"
	"testing"

	"golang.org/x/sys/unix"
)

// IfFlags reads this host's loopback as up and running, and tells of an
// interface that does not exist.
func TestIfFlags(t *testing.T) {
	f, err := OpenIfFlags()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fl, err := f.Flags("lo")
	if err != nil {
		t.Fatal(err)
	}
	if fl&net.FlagUp == 0 || fl&net.FlagRunning == 0 {
		t.Errorf("lo: %v, want up|running", fl)
	}
	if _, err := f.Flags("nosuch0"); !errors.Is(err, unix.ENODEV) {
		t.Errorf("nosuch0: %v, want ENODEV", err)
	}
	if _, err := f.Flags("a-name-longer-than-ifnamsiz"); err == nil {
		t.Error("a name longer than IFNAMSIZ was read")
	}
}
