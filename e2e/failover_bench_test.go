//go:build lab

package e2e

import (
	"testing"
	"time"
)

// BenchmarkFailover measures the pair against the goals, with
// keepalive 50ms and deadtime 200ms: kill -9 of the active directord to
// the first new connection through the standby (goal: p99 300ms over 20
// rounds), and a graceful stop's longest outage a client sees (goal:
// 50ms). Beside the kill, which its VIP guard reports to the peer, the
// death of the whole director, which only deadtime reveals; beside the
// graceful stop of directors that forward, as NAT needs, that of
// directors that do not, which drop what reaches them in the moment
// between the two directors' VIPs. Each run is a whole series of rounds: run it with -benchtime 1x.
// The figures are the lab's, under emulation; the daemons' own part is
// reported beside the client's.
func BenchmarkFailover(b *testing.B) {
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.Run("Kill", func(b *testing.B) {
		for range b.N {
			took, acquired := newPairLab(b).takeoverRounds(20, killDirectord)
			b.ReportMetric(ms(took[len(took)/2]), "median-ms")
			b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
			b.ReportMetric(ms(acquired[len(acquired)*99/100]), "vip-p99-ms")
		}
	})
	b.Run("NodeDeath", func(b *testing.B) {
		for range b.N {
			took, acquired := newPairLab(b).takeoverRounds(20, nodeDeath)
			b.ReportMetric(ms(took[len(took)/2]), "median-ms")
			b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
			b.ReportMetric(ms(acquired[len(acquired)*99/100]), "vip-p99-ms")
		}
	})
	for _, fw := range []struct {
		name       string
		forwarding bool
	}{{"GracefulStop", true}, {"GracefulStopNoForwarding", false}} {
		b.Run(fw.name, func(b *testing.B) {
			for range b.N {
				p := newPairLab(b)
				p.forwarding = fw.forwarding
				outages, handovers := p.gracefulRounds(9)
				b.ReportMetric(ms(outages[len(outages)/2]), "median-outage-ms")
				b.ReportMetric(ms(outages[len(outages)-1]), "max-outage-ms")
				b.ReportMetric(ms(handovers[len(handovers)/2]), "median-handover-ms")
			}
		})
	}
}
