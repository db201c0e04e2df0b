//go:build lab

package e2e

import (
	"fmt"

	"github.com/prometheus/procfs"
)

// cpuTimes is where the guest's CPU time went up to one moment, in
// seconds: all of it, the part spent idle, and the part of some processes.
type cpuTimes struct {
	total, idle float64
	procs       []float64
}

// readCPU reads /proc/stat and each pid's /proc/PID/stat. A process that
// is gone counts nothing.
func readCPU(pids ...int) cpuTimes {
	var c cpuTimes
	fs, err := procfs.NewDefaultFS()
	if err != nil {
		return c
	}
	if st, err := fs.Stat(); err == nil {
		t := st.CPUTotal
		// Guest time is already counted in user and nice.
		c.total = t.User + t.Nice + t.System + t.Idle + t.Iowait + t.IRQ + t.SoftIRQ + t.Steal
		c.idle = t.Idle + t.Iowait
	}
	for _, pid := range pids {
		var v float64
		if p, err := fs.Proc(pid); err == nil {
			if st, err := p.Stat(); err == nil {
				v = st.CPUTime()
			}
		}
		c.procs = append(c.procs, v)
	}
	return c
}

// since tells how busy the guest was between c0 and c, as a share of all
// its CPUs, and each process's share of that time.
func (c cpuTimes) since(c0 cpuTimes, names ...string) string {
	all := c.total - c0.total
	if all <= 0 {
		return "no CPU time elapsed"
	}
	pct := func(v float64) string { return fmt.Sprintf("%.0f%%", 100*v/all) }
	s := "guest busy " + pct(all-(c.idle-c0.idle))
	for i, name := range names {
		if i < len(c.procs) && i < len(c0.procs) && c.procs[i] >= c0.procs[i] {
			s += ", " + name + " " + pct(c.procs[i]-c0.procs[i])
		}
	}
	return s
}

// threads is how many threads the test process has (0 if unknown): a
// starved guest shows in it as work piles up on threads of the client's
// namespace.
func threads() int {
	p, err := procfs.Self()
	if err != nil {
		return 0
	}
	st, err := p.Stat()
	if err != nil {
		return 0
	}
	return st.NumThreads
}
