package ctl

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
)

// A bgp group director's status shows each peer's session, each VIP with
// why it is not announced, and the group with a mismatch called out.
func TestStatusBGP(t *testing.T) {
	since := time.Now().Add(-90 * time.Second)
	out := statusOutput(t, control.Status{Status: director.Status{Node: "d1", Config: "/etc/d.yaml"}, Role: "active",
		BGP: &control.BGPStatus{
			Peers: []control.BGPPeer{
				{Address: "10.0.1.1", ASN: 65000, State: "established", Since: since, BFD: "up", PrefixesSent: 1},
				{Address: "10.0.9.1", ASN: 65000, State: "active", LastError: "the router has not answered"},
			},
			VIPs: []control.BGPVIP{
				{Service: "web", VIP: "192.0.2.10/32", Announced: true, Healthy: 2, Servers: 2},
				{Service: "mail", VIP: "192.0.2.25/32", Reason: "0 of 2 real servers healthy; announce.min_healthy is 1", Servers: 2},
			},
			Group: &control.GroupStatus{Digest: "aa", Mismatched: 1, Members: []control.GroupMember{
				{Node: "d1", Self: true, Alive: true, DigestMatch: true, Announced: []string{"192.0.2.10/32"}},
				{Node: "d2", Alive: true, LastSeen: time.Now(), DigestMatch: false, Digest: "bb", Announced: []string{"192.0.2.10/32"}},
				{Node: "d3", Alive: false, LastSeen: time.Now().Add(-time.Minute), DigestMatch: true},
			}},
		}})
	for _, want := range []string{
		"bgp: announcing",
		"  10.0.1.1  65000  established  1m30s   up   1              0",
		"  10.0.9.1  65000  active       -       -    0              0      the router has not answered",
		"  192.0.2.10/32  web      yes        2/2",
		"  192.0.2.25/32  mail     NO         0/2      0 of 2 real servers healthy; announce.min_healthy is 1",
		"group: digest aa, 1 mismatched",
		"  d1 (this)  yes    -          same         192.0.2.10/32",
		"  d2         yes    0s ago     MISMATCH bb  192.0.2.10/32",
		"  d3         NO     1m0s ago   same",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "single director") {
		t.Errorf("a group's director says single:\n%s", out)
	}
}

func TestDrainNode(t *testing.T) {
	var got []control.Command
	sock := fakeDaemon(t, func(_ context.Context, r control.Request) (any, error) {
		got = append(got, r.Cmd)
		switch r.Cmd {
		case control.CmdDrainNode:
			return control.BGPStatus{Drained: true, VIPs: []control.BGPVIP{{VIP: "192.0.2.10/32"}}}, nil
		case control.CmdEnableNode:
			return control.BGPStatus{VIPs: []control.BGPVIP{{VIP: "192.0.2.10/32", Announced: true}}}, nil
		}
		return nil, errors.New("this director has no bgp block")
	})
	out, _, code := runCtl(t, "drain-node", "-socket", sock)
	if code != 0 || !strings.Contains(out, "node drained: 0 VIP(s) announced") {
		t.Errorf("drain-node: exit %d\n%s", code, out)
	}
	out, _, code = runCtl(t, "enable-node", "-socket", sock)
	if code != 0 || !strings.Contains(out, "node enabled: 1 of 1 VIP(s) announced") {
		t.Errorf("enable-node: exit %d\n%s", code, out)
	}
	if len(got) != 2 || got[0] != control.CmdDrainNode || got[1] != control.CmdEnableNode {
		t.Errorf("daemon asked %v", got)
	}
}
