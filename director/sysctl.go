package director

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Sysctl reads and writes the IPVS sysctls (net.ipv4.vs.*) of the
// director's network namespace, by their short name ("sloppy_tcp").
type Sysctl interface {
	Get(name string) (string, error)
	Set(name, value string) error
}

// ProcSysctl is Sysctl over /proc/sys/net/ipv4/vs, which the kernel
// registers per network namespace once ip_vs is loaded (opening the IPVS
// netlink family loads it).
type ProcSysctl struct {
	// Dir is the directory; "" means /proc/sys/net/ipv4/vs.
	Dir string
}

func (p ProcSysctl) path(name string) string {
	dir := p.Dir
	if dir == "" {
		dir = "/proc/sys/net/ipv4/vs"
	}
	return filepath.Join(dir, name)
}

// Get implements Sysctl.
func (p ProcSysctl) Get(name string) (string, error) {
	b, err := os.ReadFile(p.path(name))
	if err != nil {
		return "", fmt.Errorf("read net.ipv4.vs.%s: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// Set implements Sysctl.
func (p ProcSysctl) Set(name, value string) error {
	if err := os.WriteFile(p.path(name), []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("write net.ipv4.vs.%s: %w", name, err)
	}
	return nil
}

// bgpSysctls are what bgp mode needs of IPVS, in the order written
// (docs/design/consistent-hashing.md §7):
var bgpSysctls = []struct{ name, value, why string }{
	// a director that receives the middle of a flow it never saw (the
	// routers moved it) schedules it, to the same real server, instead
	// of handing it to the local stack, which resets it;
	{"sloppy_tcp", "1", "schedule mid-flow TCP packets instead of resetting them"},
	{"sloppy_sctp", "1", "schedule mid-flow SCTP packets"},
	// an ICMP error (PMTU) about a flow lands on any director: scheduled,
	// it reaches the flow's real server;
	{"schedule_icmp", "1", "route ICMP errors of unknown flows to their real server"},
	// a SYN on an entry whose server is quiesced or removed is
	// rescheduled (turned off only around moves, see executeMoves);
	{"expire_nodest_conn", "1", "reschedule flows of quiesced and removed servers"},
	// a SYN reusing the port of a finished DR connection is rescheduled;
	{"conn_reuse_mode", "2", "reschedule reused ports of finished DR connections"},
	// with a backup sync daemon running, backup_only stops forwarding;
	{"backup_only", "0", "keep forwarding while the backup sync daemon runs"},
	// with conntrack, a rescheduled SYN is dropped.
	{"conntrack", "0", "no conntrack: rescheduled SYNs are not dropped"},
}

// writeSysctls sets bgpSysctls, logging what it changed. A failure is
// loud but not fatal: the director still forwards, with the kernel's
// defaults.
func (d *Director) writeSysctls() {
	for _, s := range bgpSysctls {
		was, err := d.sysctl.Get(s.name)
		if err == nil && was == s.value {
			continue
		}
		if err := d.sysctl.Set(s.name, s.value); err != nil {
			d.log.Warn("cannot set an IPVS sysctl bgp mode needs", "sysctl", "net.ipv4.vs."+s.name, "want", s.value, "why", s.why, "err", err)
			continue
		}
		d.log.Info("ipvs sysctl set for bgp mode", "sysctl", "net.ipv4.vs."+s.name, "was", was, "now", s.value, "why", s.why)
	}
}

// executeMoves is execute, with expire_nodest_conn off while ops move
// destinations: each removal would otherwise queue, a jiffy later, work
// that deletes every connection of the removed server, which can run
// before it is re-added.
func (r *Reconciler) executeMoves(ops []Op) Result {
	if r.sysctl == nil || !hasMove(ops) {
		return r.execute(ops)
	}
	if err := r.sysctl.Set("expire_nodest_conn", "0"); err != nil {
		r.log.Warn("cannot turn expire_nodest_conn off to move destinations; their connections may be expired", "err", err)
	}
	defer func() {
		if err := r.sysctl.Set("expire_nodest_conn", "1"); err != nil {
			r.log.Warn("cannot turn expire_nodest_conn back on after moving destinations", "err", err)
		}
	}()
	return r.execute(ops)
}
