package ipvsdump

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// kernelService encodes a service message as the kernel's
// ip_vs_genl_fill_service does.
func kernelService(t testing.TB, fn func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.Nested(cmdAttrService, func(ae *netlink.AttributeEncoder) error { fn(ae); return nil })
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func kernelDest(t testing.TB, fn func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.Nested(cmdAttrDest, func(ae *netlink.AttributeEncoder) error { fn(ae); return nil })
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addr16(s string) []byte {
	a := netip.MustParseAddr(s)
	if a.Is4() {
		b := make([]byte, 16)
		a4 := a.As4()
		copy(b, a4[:])
		return b
	}
	a16 := a.As16()
	return a16[:]
}

func port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

func flags(f, mask uint32) []byte {
	return binary.NativeEndian.AppendUint32(binary.NativeEndian.AppendUint32(nil, f), mask)
}

func stats(ae *netlink.AttributeEncoder, typ uint16, wide bool, base uint64) {
	ae.Nested(typ, func(ae *netlink.AttributeEncoder) error {
		for i := uint16(1); i <= 10; i++ {
			if wide || i == 4 || i == 5 {
				ae.Uint64(i, base+uint64(i))
			} else {
				ae.Uint32(i, uint32(base)+uint32(i))
			}
		}
		ae.Bytes(11, nil) // padding, as the kernel adds before 64-bit values
		return nil
	})
}

func wantStats(base uint64) ipvs.Stats {
	return ipvs.Stats{
		Connections: base + 1, IncomingPackets: base + 2, OutgoingPackets: base + 3,
		IncomingBytes: base + 4, OutgoingBytes: base + 5, ConnectionRate: base + 6,
		IncomingPacketRate: base + 7, OutgoingPacketRate: base + 8, IncomingByteRate: base + 9, OutgoingByteRate: base + 10,
	}
}

func TestDecodeService(t *testing.T) {
	cases := []struct {
		name string
		enc  func(ae *netlink.AttributeEncoder)
		want ipvs.ServiceExtended
	}{
		{
			name: "ipv4 tcp, persistent with a netmask, stats",
			enc: func(ae *netlink.AttributeEncoder) {
				ae.Uint16(svcAttrAF, unix.AF_INET)
				ae.Uint16(svcAttrProtocol, unix.IPPROTO_TCP)
				ae.Bytes(svcAttrAddr, addr16("192.0.2.10"))
				ae.Bytes(svcAttrPort, port(443))
				ae.String(svcAttrSched, "wlc")
				ae.Bytes(svcAttrFlags, flags(uint32(ipvs.ServicePersistent|ipvs.ServiceHashed), 0xffffffff))
				ae.Uint32(svcAttrTimeout, 300)
				ae.Bytes(svcAttrNetmask, []byte{255, 255, 255, 0})
				stats(ae, svcAttrStats, false, 100)
				stats(ae, svcAttrStats64, true, 1<<40)
			},
			want: ipvs.ServiceExtended{
				Service: ipvs.Service{Family: ipvs.INET, Protocol: ipvs.TCP, Address: netip.MustParseAddr("192.0.2.10"), Port: 443,
					Scheduler: "wlc", Flags: ipvs.ServicePersistent | ipvs.ServiceHashed, Timeout: 300,
					Netmask: netmask.MaskFrom(24, 32)},
				Stats: wantStats(100), Stats64: wantStats(1 << 40),
			},
		},
		{
			name: "ipv6 udp with a prefix length",
			enc: func(ae *netlink.AttributeEncoder) {
				ae.Uint16(svcAttrAF, unix.AF_INET6)
				ae.Uint16(svcAttrProtocol, unix.IPPROTO_UDP)
				ae.Bytes(svcAttrAddr, addr16("2001:db8::53"))
				ae.Bytes(svcAttrPort, port(53))
				ae.String(svcAttrSched, "sh")
				ae.Bytes(svcAttrFlags, flags(uint32(ipvs.ServiceSchedulerOpt1), 0xffffffff))
				ae.Uint32(svcAttrNetmask, 64)
			},
			want: ipvs.ServiceExtended{Service: ipvs.Service{Family: ipvs.INET6, Protocol: ipvs.UDP,
				Address: netip.MustParseAddr("2001:db8::53"), Port: 53, Scheduler: "sh", Flags: ipvs.ServiceSchedulerOpt1,
				Netmask: netmask.MaskFrom(64, 128)}},
		},
		{
			name: "fwmark: no address",
			enc: func(ae *netlink.AttributeEncoder) {
				ae.Uint16(svcAttrAF, unix.AF_INET)
				ae.Uint32(svcAttrFWMark, 7)
				ae.Uint16(svcAttrProtocol, 0)
				ae.Bytes(svcAttrAddr, make([]byte, 16))
				ae.Bytes(svcAttrPort, port(0))
				ae.String(svcAttrSched, "rr")
				ae.Bytes(svcAttrFlags, flags(0, 0xffffffff))
			},
			want: ipvs.ServiceExtended{Service: ipvs.Service{Family: ipvs.INET, FWMark: 7, Scheduler: "rr"}},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := decodeService(kernelService(t, c.enc))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestDecodeDestination(t *testing.T) {
	b := kernelDest(t, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(destAttrAddr, addr16("2001:db8::11"))
		ae.Bytes(destAttrPort, port(8080))
		ae.Uint32(destAttrFwdMethod, uint32(ipvs.Tunnel))
		ae.Uint32(destAttrWeight, 5)
		ae.Uint32(destAttrUThresh, 100)
		ae.Uint32(destAttrLThresh, 10)
		ae.Uint32(destAttrActiveConns, 3)
		ae.Uint32(destAttrInactConns, 4)
		ae.Uint32(destAttrPersistConns, 2)
		ae.Uint16(destAttrAddrFamily, unix.AF_INET6)
		ae.Uint8(destAttrTunType, uint8(ipvs.GUE))
		ae.Bytes(destAttrTunPort, port(6080))
		ae.Uint16(destAttrTunFlags, uint16(ipvs.TunnelEncapChecksum))
		stats(ae, destAttrStats, false, 7)
		stats(ae, destAttrStats64, true, 9)
	})
	// The service is IPv4: the destination's own family wins.
	got, err := decodeDestination(b, ipvs.INET)
	if err != nil {
		t.Fatal(err)
	}
	want := ipvs.DestinationExtended{
		Destination: ipvs.Destination{Address: netip.MustParseAddr("2001:db8::11"), Port: 8080, Family: ipvs.INET6,
			FwdMethod: ipvs.Tunnel, Weight: 5, UpperThreshold: 100, LowerThreshold: 10,
			TunnelType: ipvs.GUE, TunnelPort: 6080, TunnelFlags: ipvs.TunnelEncapChecksum},
		ActiveConnections: 3, InactiveConnections: 4, PersistentConnections: 2,
		Stats: wantStats(7), Stats64: wantStats(9),
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}

	// Without a family attribute (kernels before 3.18) the service's
	// family is used.
	old := kernelDest(t, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(destAttrAddr, addr16("192.0.2.11"))
		ae.Bytes(destAttrPort, port(80))
	})
	got, err = decodeDestination(old, ipvs.INET)
	if err != nil || got.Address != netip.MustParseAddr("192.0.2.11") || got.Family != ipvs.INET {
		t.Errorf("destination without a family: %+v, %v", got, err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	cases := map[string][]byte{
		"truncated attribute": {8, 0, 1, 0, 0},
		"length past the end": {40, 0, 1, 0x80, 4, 0, 1, 0},
		"no service": kernelDest(t, func(ae *netlink.AttributeEncoder) {
			ae.Bytes(destAttrAddr, addr16("192.0.2.1"))
		}),
		"short address": kernelService(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint16(svcAttrAF, unix.AF_INET6)
			ae.Bytes(svcAttrAddr, []byte{1, 2, 3, 4})
			ae.Bytes(svcAttrFlags, flags(0, 0))
		}),
		"unknown family": kernelService(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint16(svcAttrAF, 99)
			ae.Bytes(svcAttrAddr, addr16("192.0.2.1"))
		}),
		"a u32 of two bytes": kernelService(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint16(svcAttrAF, unix.AF_INET)
			ae.Uint16(svcAttrTimeout, 1)
		}),
		"flags without a mask": kernelService(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint16(svcAttrAF, unix.AF_INET)
			ae.Uint32(svcAttrFlags, 1)
		}),
		"stats of the wrong width": kernelService(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint16(svcAttrAF, unix.AF_INET)
			ae.Bytes(svcAttrAddr, addr16("192.0.2.1"))
			ae.Nested(svcAttrStats64, func(ae *netlink.AttributeEncoder) error { ae.Uint32(1, 1); return nil })
		}),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := decodeService(b); !errors.Is(err, ErrMalformed) {
				t.Errorf("decodeService: %v, want ErrMalformed", err)
			}
		})
	}
	if _, err := decodeDestination(kernelDest(t, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(destAttrPort, []byte{1})
	}), ipvs.INET); !errors.Is(err, ErrMalformed) {
		t.Errorf("a one-byte port: %v, want ErrMalformed", err)
	}
}

// nlmsg frames a payload as one netlink message.
func nlmsg(typ, flags uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(payload)+3)
	binary.NativeEndian.PutUint32(b[0:4], uint32(nlmsgHdrLen+len(payload)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], flags)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func genl(attrs []byte) []byte { return append([]byte{cmdGetDest, genlVersion, 0, 0}, attrs...) }

func status(errno int32) []byte { return binary.NativeEndian.AppendUint32(nil, uint32(errno)) }

func TestWalk(t *testing.T) {
	const multi = 0x2
	type result struct {
		payloads int
		done     bool
		err      error
	}
	run := func(seq uint32, datagrams ...[]byte) result {
		var r result
		var intr bool
		for _, d := range datagrams {
			r.done, r.err = walk(d, seq, &intr, func([]byte) { r.payloads++ })
			if r.done || r.err != nil {
				break
			}
		}
		return r
	}
	a, b := genl([]byte{4, 0, 1, 0}), genl(nil)
	cases := []struct {
		name      string
		datagrams [][]byte
		want      result
		wantErr   error
	}{
		{"two messages then done, over two datagrams",
			[][]byte{append(nlmsg(20, multi, 5, a), nlmsg(20, multi, 5, b)...), nlmsg(nlmsgDone, multi, 5, status(0))},
			result{payloads: 2, done: true}, nil},
		{"an earlier request's leftovers are skipped",
			[][]byte{append(nlmsg(20, multi, 4, a), nlmsg(nlmsgDone, multi, 4, status(0))...), append(nlmsg(20, multi, 5, a), nlmsg(nlmsgDone, multi, 5, status(0))...)},
			result{payloads: 1, done: true}, nil},
		{"the kernel's error",
			[][]byte{nlmsg(nlmsgError, 0, 5, append(status(-int32(unix.EINVAL)), make([]byte, 16)...))},
			result{done: true}, unix.EINVAL},
		{"an interrupted dump is reported at its end",
			[][]byte{nlmsg(20, multi|nlmFDumpIntr, 5, a), nlmsg(20, multi, 5, a), nlmsg(nlmsgDone, multi, 5, status(0))},
			result{payloads: 2, done: true}, errDumpIntr},
		{"a header cut short", [][]byte{nlmsg(20, multi, 5, a)[:10]}, result{}, ErrMalformed},
		{"a length beyond the datagram", [][]byte{nlmsg(20, multi, 5, a)[:20]}, result{}, ErrMalformed},
		{"a message too short for its generic header", [][]byte{nlmsg(20, multi, 5, []byte{1, 2})}, result{}, ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := run(5, c.datagrams...)
			if !errors.Is(got.err, c.wantErr) || (c.wantErr == nil && got.err != nil) {
				t.Fatalf("err %v, want %v", got.err, c.wantErr)
			}
			got.err = nil
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestServiceAttr(t *testing.T) {
	// What Destinations asks the kernel for must name the service as
	// the kernel parses it: family, then fwmark or protocol, address
	// (16 bytes) and port (network order).
	b := serviceAttr(ipvs.Service{Family: ipvs.INET, Protocol: ipvs.TCP, Address: netip.MustParseAddr("192.0.2.10"), Port: 443, Scheduler: "ignored"})
	s, err := decodeService(b)
	if err != nil {
		t.Fatal(err)
	}
	if s.Family != ipvs.INET || s.Protocol != ipvs.TCP || s.Address != netip.MustParseAddr("192.0.2.10") || s.Port != 443 || s.Scheduler != "" {
		t.Errorf("request names %+v", s)
	}
	fw, err := decodeService(serviceAttr(ipvs.Service{Family: ipvs.INET6, FWMark: 9}))
	if err != nil || fw.FWMark != 9 || fw.Family != ipvs.INET6 || fw.Address.IsValid() {
		t.Errorf("fwmark request names %+v (%v)", fw, err)
	}
}

// FuzzDecode feeds arbitrary bytes to every parser of kernel messages:
// none may panic, and what they accept must be well-formed.
func FuzzDecode(f *testing.F) {
	f.Add(kernelService(f, func(ae *netlink.AttributeEncoder) {
		ae.Uint16(svcAttrAF, unix.AF_INET)
		ae.Bytes(svcAttrAddr, addr16("192.0.2.1"))
		ae.Bytes(svcAttrFlags, flags(0, 0))
		stats(ae, svcAttrStats, false, 1)
	}))
	f.Add(kernelDest(f, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(destAttrAddr, addr16("2001:db8::1"))
		ae.Uint16(destAttrAddrFamily, unix.AF_INET6)
	}))
	f.Add(append(nlmsg(20, 2, 1, genl(nil)), nlmsg(nlmsgDone, 2, 1, status(0))...))
	f.Fuzz(func(t *testing.T, b []byte) {
		if s, err := decodeService(b); err == nil && s.FWMark == 0 && !s.Address.IsValid() {
			t.Errorf("accepted a service with no address: %+v", s)
		}
		if d, err := decodeDestination(b, ipvs.INET); err == nil && !d.Address.IsValid() {
			t.Errorf("accepted a destination with no address: %+v", d)
		}
		var intr bool
		_, _ = walk(b, 1, &intr, func(p []byte) {
			if len(p) > len(b) {
				t.Errorf("payload longer than the datagram")
			}
		})
	})
}
