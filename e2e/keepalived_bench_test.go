//go:build lab

package e2e

import (
	"flag"
	"fmt"
	"slices"
	"testing"
	"time"
)

var versusRoundCount = flag.Int("versus.rounds", 20, "rounds of each BenchmarkVersusKeepalivedFailover case")

// BenchmarkVersusKeepalivedFailover is the first row of issue 20's side
// by side: a pair's unplanned failover run by directord (keepalive 50ms,
// deadtime 150ms) and by Debian's keepalived 2.2.7 (VRRPv3, advert_int
// 0.05), in the same pair lab with the same VIP, DR real servers, TCP
// check and kernel sync daemon on the back link. Two faults: kill -9 of
// the active daemon (all of keepalived's processes; directord alone, as
// its VIP guard is part of what it is), and the death of the whole
// director. Each case reports, over -versus.rounds rounds (20), the p50
// and p99 time from the fault to the first new client connection through
// the other director, and the share of established connections (5 a
// round) that still answer after it; the director/keepalived ratios are
// logged. The rounds' logs also tell what the clients saw otherwise: a
// killed keepalived's kernel keeps its VIP and IPVS table and serves new
// connections on until the client follows the backup's gratuitous ARP,
// the VIP on both directors until keepalived is restarted (directord's
// VIP guard removes the VIP of a killed directord). Run it with
// -benchtime 1x; the figures are the lab's, under emulation on a shared
// host.
func BenchmarkVersusKeepalivedFailover(b *testing.B) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	type row struct{ p50, p99, kept float64 }
	for _, f := range []versusFault{faultKill, faultDeath} {
		rows := map[string]row{}
		for _, newDriver := range []func() pairDriver{
			func() pairDriver { return directorDriver{} },
			func() pairDriver { return &keepalivedDriver{} },
		} {
			name := newDriver().name()
			b.Run(name+"/"+f.String(), func(b *testing.B) {
				for range b.N {
					drv := newDriver()
					res := newPairLab(b).versusRounds(drv, slices.Repeat([]versusFault{f}, *versusRoundCount))
					r := row{
						p50:  ms(res.took[len(res.took)/2]),
						p99:  ms(res.took[len(res.took)*99/100]),
						kept: 100 * float64(res.kept) / float64(res.flows),
					}
					b.ReportMetric(r.p50, "p50-ms")
					b.ReportMetric(r.p99, "p99-ms")
					b.ReportMetric(r.kept, "kept-%")
					if k, ok := drv.(*keepalivedDriver); ok {
						b.Logf("keepalived left the VIP on a restarted backup %d times of %d", k.leftVIP, len(res.took))
					}
					rows[name] = r
				}
			})
		}
		d, dok := rows["Director"]
		k, kok := rows["Keepalived"]
		if dok && kok {
			b.Logf("%s, director/keepalived: p50 %s, p99 %s, kept %s", f, ratio(d.p50, k.p50), ratio(d.p99, k.p99), ratio(d.kept, k.kept))
		}
	}
}

// ratio is a/b as text (below 1 is director ahead on times).
func ratio(a, b float64) string {
	if b == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", a/b)
}
