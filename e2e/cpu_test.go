//go:build lab

package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// cpuTicks is where the guest's CPU time went up to one moment, in clock
// ticks: all of it, the part spent idle, and the part of some processes.
type cpuTicks struct {
	total, idle uint64
	procs       []uint64
}

// readCPU reads /proc/stat and each pid's /proc/PID/stat. A process that
// is gone counts nothing.
func readCPU(pids ...int) cpuTicks {
	var c cpuTicks
	if b, err := os.ReadFile("/proc/stat"); err == nil {
		line, _, _ := strings.Cut(string(b), "\n")
		for i, f := range strings.Fields(line)[1:] {
			v, _ := strconv.ParseUint(f, 10, 64)
			c.total += v
			if i == 3 || i == 4 { // idle, iowait
				c.idle += v
			}
		}
	}
	for _, pid := range pids {
		var v uint64
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			// The command name may hold spaces; the fields after it do not.
			if _, rest, ok := strings.Cut(string(b), ") "); ok {
				f := strings.Fields(rest)
				u, _ := strconv.ParseUint(f[11], 10, 64) // utime
				s, _ := strconv.ParseUint(f[12], 10, 64) // stime
				v = u + s
			}
		}
		c.procs = append(c.procs, v)
	}
	return c
}

// since tells how busy the guest was between c0 and c, as a share of all
// its CPUs, and each process's share of that time.
func (c cpuTicks) since(c0 cpuTicks, names ...string) string {
	all := c.total - c0.total
	if all == 0 {
		return "no CPU time elapsed"
	}
	pct := func(v uint64) string { return fmt.Sprintf("%.0f%%", 100*float64(v)/float64(all)) }
	s := "guest busy " + pct(all-(c.idle-c0.idle))
	for i, name := range names {
		if i < len(c.procs) && i < len(c0.procs) && c.procs[i] >= c0.procs[i] {
			s += ", " + name + " " + pct(c.procs[i]-c0.procs[i])
		}
	}
	return s
}
