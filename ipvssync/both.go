package ipvssync

// Connection sync among all directors of a bgp group: every director
// runs the kernel's master daemon (sending the connections it forwards)
// and its backup daemon (taking in everyone else's) at once, on the same
// interface, sync id, multicast group and port.
//
// What the kernel does, from net/netfilter/ipvs/ip_vs_sync.c (6.1):
//   - Master and backup are independent: start_sync_thread refuses a
//     second daemon of the same state (EEXIST), never one of the other.
//     Each keeps its own configuration (ipvs->mcfg, ipvs->bcfg), so the
//     kernel does not force them to share a group or port: the group does,
//     because every director's master must send where every other
//     director's backup listens. Both are started with the kernel's
//     defaults stated (224.0.0.81, port 8848, TTL 1), as the pair's are.
//   - No director hears itself: make_send_sock turns IP_MULTICAST_LOOP
//     off on the master's socket, so its messages never reach a socket of
//     its own namespace. The backup does not filter on the sender: it
//     drops only messages whose sync id differs from its own non-zero one
//     (ip_vs_process_message), and nothing by source address. So every
//     director must use the same sync id, and that is safe.
//   - net.ipv4.vs.backup_only=1 makes ip_vs_in pass every packet up
//     unscheduled while a backup daemon runs (sysctl_backup_only): a
//     director that announces its VIPs would stop forwarding. StartBoth
//     refuses to run the backup then.
//   - The number of sync threads (net.ipv4.vs.sync_ports) is fixed when
//     the first daemon starts; thread n sends to and listens on port+n, so
//     the directors of a group must agree on it too (default 1).

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"strconv"
	"strings"
)

// The kernel's IP_VS_SYNC_GROUP, IP_VS_SYNC_PORT and default TTL, stated
// so that a daemon started by hand elsewhere is recognised as different.
var syncDefaultGroup = netip.AddrFrom4([4]byte{224, 0, 0, 81})

const (
	syncDefaultPort = 8848
	syncDefaultTTL  = 1
)

// backupOnlyPath shows net.ipv4.vs.backup_only of the reading thread's
// network namespace.
const backupOnlyPath = "/proc/sys/net/ipv4/vs/backup_only"

// ErrBackupOnly is returned by StartBoth when net.ipv4.vs.backup_only is
// set: with it, a running backup daemon stops this director forwarding.
var ErrBackupOnly = errors.New("net.ipv4.vs.backup_only is set: a backup sync daemon would stop IPVS forwarding on this director; set it to 0")

// daemonControl is what StartBoth needs of a SyncConn.
type daemonControl interface {
	Start(d SyncDaemon) error
	Stop(state SyncState) error
	Daemons() ([]SyncDaemon, error)
}

// bothDaemons is the master and backup a group director runs, backup
// first: it should listen before the master speaks.
func bothDaemons(iface string, syncID uint8) [2]SyncDaemon {
	d := SyncDaemon{Interface: iface, SyncID: uint32(syncID), Group: syncDefaultGroup, Port: syncDefaultPort, TTL: syncDefaultTTL}
	b, m := d, d
	b.State, m.State = SyncBackup, SyncMaster
	return [2]SyncDaemon{b, m}
}

// StartBoth runs the master and the backup sync daemon at once on iface
// with syncID, for connection sync among every director of a group
// (bgp.sync). It is idempotent, so it serves a start, a restart and a
// reload alike: a daemon already running with this configuration is
// adopted and left alone (no sync message is lost), one running with
// another (interface, sync id, group, port or TTL) is stopped and started
// again. Both are attempted even if one fails; the errors are joined.
//
// If net.ipv4.vs.backup_only is set the backup is not run (a running
// one is stopped), the master is, and the error matches ErrBackupOnly.
// The sysctl is read in the calling thread's network namespace, which
// must be c's.
func StartBoth(c *SyncConn, iface string, syncID uint8, log *slog.Logger) error {
	return startBoth(c, readBackupOnly, iface, syncID, log)
}

func startBoth(c daemonControl, backupOnly func() (bool, error), iface string, syncID uint8, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	want := bothDaemons(iface, syncID)
	for _, d := range want {
		// Refuse a bad name before anything running is stopped for it.
		if err := d.validate(); err != nil {
			return fmt.Errorf("start IPVS sync daemons: %w", err)
		}
	}
	running, err := c.Daemons()
	if err != nil {
		return fmt.Errorf("start IPVS sync daemons: %w", err)
	}
	bo, err := backupOnly()
	if err != nil {
		return fmt.Errorf("start IPVS sync daemons: %w", err)
	}
	var errs []error
	for _, w := range want {
		got, found := daemonIn(running, w.State)
		if w.State == SyncBackup && bo {
			if found {
				if err := c.Stop(SyncBackup); err != nil {
					errs = append(errs, err)
				}
				log.Warn("ipvs sync: stopped the backup daemon: backup_only would stop forwarding", "interface", got.Interface, "sync_id", got.SyncID)
			}
			errs = append(errs, fmt.Errorf("start IPVS sync daemon (%s): %w", w.label(), ErrBackupOnly))
			continue
		}
		if found && sameSyncConfig(w, got) {
			log.Info("ipvs sync: adopted the running daemon", "state", w.State, "interface", w.Interface, "sync_id", w.SyncID)
			continue
		}
		if found {
			log.Info("ipvs sync: restarting a daemon with another configuration", "state", w.State,
				"interface", got.Interface, "sync_id", got.SyncID, "group", got.Group, "port", got.Port, "ttl", got.TTL,
				"want_interface", w.Interface, "want_sync_id", w.SyncID)
			if err := c.Stop(w.State); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := c.Start(w); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("ipvs sync: started the daemon", "state", w.State, "interface", w.Interface, "sync_id", w.SyncID)
	}
	return errors.Join(errs...)
}

// StopBoth stops the master and the backup sync daemon, for a reload that
// drops bgp.sync. A directord that exits need not call it: the next
// start adopts the daemons, and until then the master keeps syncing the
// connections the kernel still forwards.
func StopBoth(c *SyncConn, log *slog.Logger) error {
	return stopBoth(c, log)
}

func stopBoth(c daemonControl, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var errs []error
	for _, s := range []SyncState{SyncMaster, SyncBackup} {
		if err := c.Stop(s); err != nil {
			errs = append(errs, err)
			continue
		}
		log.Info("ipvs sync: stopped the daemon", "state", s)
	}
	return errors.Join(errs...)
}

func daemonIn(ds []SyncDaemon, s SyncState) (SyncDaemon, bool) {
	for _, d := range ds {
		if d.State == s {
			return d, true
		}
	}
	return SyncDaemon{}, false
}

func readBackupOnly() (bool, error) {
	b, err := os.ReadFile(backupOnlyPath)
	if err != nil {
		return false, fmt.Errorf("read net.ipv4.vs.backup_only: %w", err)
	}
	return parseBackupOnly(string(b))
}

func parseBackupOnly(s string) (bool, error) {
	// proc_dointvec: any integer, non-zero meaning set.
	v, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return false, fmt.Errorf("net.ipv4.vs.backup_only %q: %w", s, err)
	}
	return v != 0, nil
}
