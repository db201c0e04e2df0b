package ipvsdump

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
	"github.com/mdlayher/netlink"
	"github.com/mdlayher/netlink/nlenc"
	"golang.org/x/sys/unix"
)

// refPackService and refPackDest are cloudflare/ipvs v0.12.0's packService
// and packDest (client_linux.go), unexported there, copied call for call:
// the bytes CreateService and CreateDestination send.
func refPackService(svc ipvs.Service) func() ([]byte, error) {
	return func() ([]byte, error) {
		flags := make([]byte, 4)
		binary.NativeEndian.PutUint32(flags, uint32(svc.Flags))
		flags = append(flags, []byte{0xFF, 0xFF, 0xFF, 0xFF}...)

		ae := netlink.NewAttributeEncoder()
		ae.Uint16(svcAttrAF, uint16(svc.Family))
		ae.String(svcAttrSched, svc.Scheduler)
		ae.Bytes(svcAttrFlags, flags)
		ae.Uint32(svcAttrTimeout, svc.Timeout)
		switch {
		case svc.Netmask.Is4():
			ae.Bytes(svcAttrNetmask, svc.Netmask.AsSlice())
		case svc.Netmask.Is6():
			if ones := svc.Netmask.Bits(); ones >= 0 {
				b := make([]byte, 4)
				nlenc.PutUint32(b, uint32(ones))
				ae.Bytes(svcAttrNetmask, b)
			}
		}

		if svc.FWMark != 0 {
			ae.Uint32(svcAttrFWMark, svc.FWMark)
		} else {
			ae.Uint16(svcAttrProtocol, uint16(svc.Protocol))
			ae.Bytes(svcAttrAddr, svc.Address.AsSlice())
			ae.Do(svcAttrPort, refPackPort(svc.Port))
		}

		return ae.Encode()
	}
}

func refPackDest(dest ipvs.Destination) func() ([]byte, error) {
	return func() ([]byte, error) {
		ae := netlink.NewAttributeEncoder()
		ae.Uint16(destAttrAddrFamily, uint16(dest.Family))
		ae.Bytes(destAttrAddr, dest.Address.AsSlice())
		ae.Do(destAttrPort, refPackPort(dest.Port))
		ae.Uint32(destAttrFwdMethod, uint32(dest.FwdMethod))
		ae.Uint32(destAttrWeight, dest.Weight)
		ae.Uint32(destAttrUThresh, dest.UpperThreshold)
		ae.Uint32(destAttrLThresh, dest.LowerThreshold)
		ae.Uint8(destAttrTunType, uint8(dest.TunnelType))
		ae.Do(destAttrTunPort, refPackPort(dest.TunnelPort))
		ae.Uint16(destAttrTunFlags, uint16(dest.TunnelFlags))

		return ae.Encode()
	}
}

func refPackPort(port uint16) func() ([]byte, error) {
	return func() ([]byte, error) {
		out := make([]byte, 2)
		binary.BigEndian.PutUint16(out, port)
		return out, nil
	}
}

// refMessage is the generic-netlink payload cloudflare/ipvs sends for ch.
func refMessage(t *testing.T, ch Change) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.Do(cmdAttrService, refPackService(ch.Service))
	switch ch.Cmd {
	case NewDest, SetDest, DelDest:
		ae.Do(cmdAttrDest, refPackDest(ch.Dest))
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func batchServices() []ipvs.Service {
	a4, a6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")
	return []ipvs.Service{
		{Family: ipvs.INET, Protocol: ipvs.TCP, Address: a4, Port: 80, Scheduler: "wlc"},
		{Family: ipvs.INET, Protocol: ipvs.UDP, Address: a4, Port: 53, Scheduler: "rr"},
		{Family: ipvs.INET, Protocol: ipvs.SCTP, Address: a4, Port: 3868, Scheduler: "sed"},
		{Family: ipvs.INET6, Protocol: ipvs.TCP, Address: a6, Port: 443, Scheduler: "lc"},
		{Family: ipvs.INET, FWMark: 7, Scheduler: "wrr"},
		{Family: ipvs.INET6, FWMark: 8, Scheduler: "mh", Flags: ipvs.ServiceSchedulerOpt1 | ipvs.ServiceSchedulerOpt2},
		{Family: ipvs.INET, Protocol: ipvs.TCP, Address: a4, Port: 8080, Scheduler: "sh",
			Flags: ipvs.ServicePersistent | ipvs.ServiceSchedulerOpt1, Timeout: 300, Netmask: netmask.MaskFrom(24, 32)},
		{Family: ipvs.INET6, Protocol: ipvs.UDP, Address: a6, Port: 5060, Scheduler: "dh",
			Flags: ipvs.ServicePersistent | ipvs.ServiceOnePacket, Timeout: 60, Netmask: netmask.MaskFrom(64, 128)},
		// A scheduler name whose NUL fills the attribute to a multiple
		// of four: no padding after it.
		{Family: ipvs.INET, Protocol: ipvs.TCP, Address: a4, Port: 1, Scheduler: "abc"},
	}
}

func batchDests() []ipvs.Destination {
	return []ipvs.Destination{
		{Family: ipvs.INET, Address: netip.MustParseAddr("198.51.100.1"), Port: 80, FwdMethod: ipvs.Masquerade, Weight: 1},
		{Family: ipvs.INET, Address: netip.MustParseAddr("198.51.100.2"), Port: 80, FwdMethod: ipvs.DirectRoute, Weight: 0,
			UpperThreshold: 100, LowerThreshold: 10},
		{Family: ipvs.INET, Address: netip.MustParseAddr("198.51.100.3"), Port: 80, FwdMethod: ipvs.Tunnel, Weight: 5,
			TunnelType: ipvs.GUE, TunnelPort: 6080, TunnelFlags: ipvs.TunnelEncapChecksum | ipvs.TunnelEncapRemoteChecksum},
		{Family: ipvs.INET, Address: netip.MustParseAddr("198.51.100.4"), Port: 80, FwdMethod: ipvs.Tunnel, Weight: 65535,
			TunnelType: ipvs.GRE, TunnelFlags: ipvs.TunnelEncapChecksum},
		{Family: ipvs.INET6, Address: netip.MustParseAddr("2001:db8::20"), Port: 443, FwdMethod: ipvs.Local, Weight: 3},
		{Family: ipvs.INET6, Address: netip.MustParseAddr("2001:db8::21"), Port: 0, FwdMethod: ipvs.Tunnel, Weight: 2},
	}
}

// TestBatchEncodingIsCloudflares: every change is encoded to the very
// bytes cloudflare/ipvs sends for it, so a batch cannot program the
// kernel differently from the one-by-one calls.
func TestBatchEncodingIsCloudflares(t *testing.T) {
	var n int
	for _, svc := range batchServices() {
		for _, cmd := range []Cmd{NewService, SetService, DelService} {
			checkEncoding(t, Change{Cmd: cmd, Service: svc})
			n++
		}
		for _, d := range batchDests() {
			for _, cmd := range []Cmd{NewDest, SetDest, DelDest} {
				checkEncoding(t, Change{Cmd: cmd, Service: svc, Dest: d})
				n++
			}
		}
	}
	if n < 100 {
		t.Fatalf("only %d changes checked", n)
	}
}

func checkEncoding(t *testing.T, ch Change) {
	t.Helper()
	const family, seq = 0x1234, 0xabcdef
	msg := appendChange([]byte{0xee}, family, seq, ch)[1:] // appends, after what is there
	if l := binary.NativeEndian.Uint32(msg[0:4]); int(l) != len(msg) || l%4 != 0 {
		t.Fatalf("%+v: length field %d, message %d bytes", ch, l, len(msg))
	}
	if typ, flags, s := binary.NativeEndian.Uint16(msg[4:6]), binary.NativeEndian.Uint16(msg[6:8]), binary.NativeEndian.Uint32(msg[8:12]); typ != family || flags != nlmFRequest || s != seq {
		t.Fatalf("%+v: header type %#x flags %#x seq %#x", ch, typ, flags, s)
	}
	if msg[16] != byte(ch.Cmd) || msg[17] != genlVersion {
		t.Fatalf("%+v: generic header %v", ch, msg[16:20])
	}
	if got, want := msg[nlmsgHdrLen+genlHdrLen:], refMessage(t, ch); !bytes.Equal(got, want) {
		t.Fatalf("%+v:\n got %x\nwant %x", ch, got, want)
	}
}

// answer is the kernel's error message (NETLINK_CAP_ACK: the request's
// header only) for the request with seq.
func answer(seq uint32, errno unix.Errno) []byte {
	b := make([]byte, nlmsgHdrLen+4+nlmsgHdrLen)
	binary.NativeEndian.PutUint32(b[0:4], uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:6], nlmsgError)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	binary.NativeEndian.PutUint32(b[16:20], uint32(-int32(errno)))
	binary.NativeEndian.PutUint32(b[20+8:20+12], seq)
	return b
}

// TestBatchAnswers: each error goes to the change it answers, answers to
// earlier requests are passed over, and only the last change's answer
// ends the send.
func TestBatchAnswers(t *testing.T) {
	const first = 100
	errs := make([]error, 4)
	var dgram []byte
	dgram = append(dgram, answer(first-1, unix.EPERM)...) // an earlier send's
	dgram = append(dgram, answer(first+1, unix.EEXIST)...)
	if batchAnswers(dgram, first, 4, errs) {
		t.Fatal("done before the last change's answer")
	}
	if !batchAnswers(answer(first+3, 0), first, 4, errs) {
		t.Fatal("the last change's acknowledgement did not end the send")
	}
	for i, err := range errs {
		if want := i == 1; (err != nil) != want {
			t.Fatalf("change %d: %v", i, err)
		}
	}
	var oe *netlink.OpError
	if !errors.Is(errs[1], unix.EEXIST) || !errors.As(errs[1], &oe) || errs[1].Error() != "netlink receive: file exists" {
		t.Fatalf("change 1: %v, want cloudflare/ipvs's error for EEXIST", errs[1])
	}
	// A failed last change ends the send too.
	errs = make([]error, 2)
	if !batchAnswers(answer(first+1, unix.ESRCH), first, 2, errs) || !errors.Is(errs[1], unix.ESRCH) {
		t.Fatalf("failed last change: %v", errs)
	}
}
