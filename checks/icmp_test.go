package checks

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestICMP(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "::1"} {
		t.Run(a, func(t *testing.T) {
			target := netip.AddrPortFrom(netip.MustParseAddr(a), 0)
			r := probeWithin(t, ICMP{}, target, time.Second)
			if errors.Is(r.Err, ErrNoICMPSocket) {
				t.Skipf("this host allows neither a ping socket nor a raw one: %v", r.Err)
			}
			if strings.Contains(errString(r.Err), "cannot assign requested address") ||
				strings.Contains(errString(r.Err), "network is unreachable") {
				t.Skipf("no %s on this host: %v", a, r.Err)
			}
			checkResult(t, r, "", nil)
		})
	}
	// TEST-NET-2 (RFC 5737) does not answer: no route, or silence.
	t.Run("unreachable", func(t *testing.T) {
		target := netip.MustParseAddrPort(silentAddr)
		r := probeWithin(t, ICMP{}, target, 300*time.Millisecond)
		if errors.Is(r.Err, ErrNoICMPSocket) {
			t.Skipf("no ICMP socket: %v", r.Err)
		}
		if r.OK {
			t.Skipf("this host's network answers %s (a sandbox's gateway?); the lab test proves the failure", silentAddr)
		}
		if r.Err == nil {
			t.Fatalf("a failure without a reason: %+v", r)
		}
	})
}

// silentAddr should not answer an echo request.
const silentAddr = "198.51.100.1:0"

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestICMPCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	r := ICMP{}.Probe(ctx, netip.MustParseAddrPort(silentAddr))
	if errors.Is(r.Err, ErrNoICMPSocket) {
		t.Skipf("no ICMP socket: %v", r.Err)
	}
	if r.OK {
		t.Skipf("this host's network answers %s", silentAddr)
	}
	if time.Since(start) > 2*time.Second {
		t.Fatalf("a cancelled probe: %+v after %v", r, time.Since(start))
	}
}

func echoBytes(typ, code byte, id, seq uint16, data string) []byte {
	b := []byte{typ, code, 0, 0, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	return append(b, data...)
}

func TestParseEchoReply(t *testing.T) {
	tests := []struct {
		name    string
		in      []byte
		v6      bool
		want    echo
		wantErr string
	}{
		{"v4 reply", echoBytes(0, 0, 0x1234, 7, "data"), false, echo{0x1234, 7, []byte("data")}, ""},
		{"v6 reply", echoBytes(129, 0, 1, 0xffff, ""), true, echo{1, 0xffff, []byte{}}, ""},
		{"v4 request", echoBytes(8, 0, 1, 1, ""), false, echo{}, "not an echo reply"},
		{"v6 type on v4", echoBytes(129, 0, 1, 1, ""), false, echo{}, "not an echo reply"},
		{"v4 type on v6", echoBytes(0, 0, 1, 1, ""), true, echo{}, "not an echo reply"},
		{"unreachable", echoBytes(3, 3, 1, 1, "x"), false, echo{}, "not an echo reply"},
		{"code", echoBytes(0, 1, 1, 1, ""), false, echo{}, "not an echo reply"},
		{"short", []byte{0, 0, 0, 0, 0, 0, 0}, false, echo{}, "shorter"},
		{"empty", nil, true, echo{}, "shorter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseEchoReply(tt.in, tt.v6)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.ID != tt.want.ID || got.Seq != tt.want.Seq || string(got.Data) != string(tt.want.Data) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseEchoReply(f *testing.F) {
	f.Add(echoBytes(0, 0, 1, 2, "0123456789abcdef"), false)
	f.Add(echoBytes(129, 0, 1, 2, ""), true)
	f.Add([]byte{3, 3, 0}, false)
	f.Fuzz(func(t *testing.T, b []byte, v6 bool) {
		e, err := parseEchoReply(b, v6)
		if err != nil {
			return
		}
		if len(b) < 8 || len(e.Data) != len(b)-8 || binary.BigEndian.Uint16(b[6:]) != e.Seq {
			t.Fatalf("accepted %x as %+v", b, e)
		}
	})
}

// inNetns runs f on a thread of its own in a new network namespace with
// lo up and net.ipv4.ping_group_range set to groups (the sysctl is per
// namespace), and skips where the host does not allow that. The thread
// is never unlocked, so it ends with f and the namespace with it.
func inNetns(t *testing.T, groups string, f func()) {
	t.Helper()
	done := make(chan string, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- fmt.Sprintf("no network namespace: %v", err)
			return
		}
		lo, err := netlink.LinkByName("lo")
		if err == nil {
			err = netlink.LinkSetUp(lo)
		}
		if err == nil {
			// /proc/sys/net is the namespace of the thread opening it.
			err = os.WriteFile("/proc/sys/net/ipv4/ping_group_range", []byte(groups), 0)
		}
		if err != nil {
			done <- fmt.Sprintf("cannot set up the namespace: %v", err)
			return
		}
		f()
		done <- ""
	}()
	if why := <-done; why != "" {
		t.Skip(why)
	}
}

// Both kinds of socket, each where it is the one available: a ping socket
// where the group may use one, a raw socket (as root) where not.
func TestICMPSockets(t *testing.T) {
	for _, tt := range []struct {
		groups string
		raw    bool
	}{{"0 2147483647", false}, {"1 0", true}} {
		t.Run(fmt.Sprintf("ping_group_range %s", tt.groups), func(t *testing.T) {
			inNetns(t, tt.groups, func() {
				for _, a := range []string{"127.0.0.1", "::1"} {
					addr := netip.MustParseAddr(a)
					conn, raw, err := listenICMP(addr.Is6())
					if err != nil {
						t.Errorf("%s: %v", a, err)
						continue
					}
					conn.Close()
					if raw != tt.raw {
						t.Errorf("%s: raw socket %v, want %v", a, raw, tt.raw)
					}
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					r := ICMP{}.Probe(ctx, netip.AddrPortFrom(addr, 0))
					cancel()
					if !r.OK {
						t.Errorf("%s: %v", a, r.Err)
					}
				}
			})
		})
	}
}
