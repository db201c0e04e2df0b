package ldirectord

import (
	"net/netip"
	"strconv"
)

// quiescentReal is a real= line of a virtual whose failed servers are
// quiesced (weight 0) rather than removed.
type quiescentReal struct {
	line  int
	vline int
}

// noteQuiescent reports the real servers ldirectord 4.12 cannot quiesce
// the way director does, and collects the rest by address:port for
// reportShared. Both come from how ldirectord finds a server in the
// table: by the address and port written on the real= line.
//
//   - A server written without a port is asked for as ADDR:0 while
//     ipvsadm lists it as ADDR:PORT (the kernel takes the service's port),
//     so once ld_start has quiesced it, the check that passes never finds
//     it to restore its weight: it stays at 0 (seen in the lab:
//     e2e/import_ldirectord_test.go).
//   - ld_start keeps one start-up entry per address:port, the last
//     virtual's, so a server in several virtuals that fails its checks is
//     quiesced only there and left out of the others.
func (im *conv) noteQuiescent(vs *vsrv, reals []real, g globals, shared map[string][]quiescentReal) {
	q := vs.quiescent
	if q == "" {
		q = g.quiescent
	}
	if q != "yes" {
		return
	}
	seen := map[int]bool{}
	for _, r := range reals {
		if r.port == 0 && vs.fwmark == 0 && vs.checktype != "off" && !seen[r.line] { // a range: one line
			im.report(r.line, "real", "written without a port, with quiescent=yes: ldirectord 4.12 looks it up as "+r.addr.String()+":0 while the kernel lists it with the service's port "+strconv.Itoa(vs.port)+", so it never restores the weight it set to 0 at start; director puts the server in when its check passes (write the port to make ldirectord do the same)")
		}
		seen[r.line] = true
		key := netip.AddrPortFrom(r.addr, uint16(r.port)).String()
		shared[key] = append(shared[key], quiescentReal{line: r.line, vline: vs.line})
	}
}

// reportShared reports, for each address:port in several quiesced
// virtuals, every line but the last virtual's: there ldirectord leaves a
// failing server out, director keeps it at weight 0.
func (im *conv) reportShared(shared map[string][]quiescentReal) {
	for key, rs := range shared {
		last := rs[len(rs)-1]
		for _, r := range rs[:len(rs)-1] {
			if r.vline == last.vline {
				continue
			}
			im.report(r.line, "real", key+" is also a real server of the virtual at line "+strconv.Itoa(last.vline)+": with quiescent=yes, ldirectord 4.12 quiesces a failing server (weight 0) only in the last virtual naming it and leaves it out here until it passes; director keeps it at weight 0 in each")
		}
	}
}
