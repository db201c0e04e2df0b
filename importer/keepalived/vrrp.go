package keepalived

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// AuthKeyFile is the key file the failover block made names; the report
// says to create it.
const AuthKeyFile = "/etc/director/authkey"

// NotifyProgram is the notify program named when keepalived had notify
// scripts; the report says what it must run.
const NotifyProgram = "/etc/director/notify"

// failover is the pair's block made from a vrrp_instance.
type failover struct {
	src    *node
	kvs    []kv
	links  []string
	vips   []string
	vipSrc []*node // the line of each VIP
	sync   string
}

// vrrp maps the first vrrp_instance (with the instances of its sync group)
// to the failover block; the others are reported.
func (im *importRun) vrrp(insts, syncGroups []*node) {
	if len(insts) == 0 {
		if im.syncSrc != nil {
			im.reportN(im.syncSrc, "no vrrp_instance, so no failover block to hold the sync daemon; left out")
		}
		return
	}
	first := insts[0]
	together := map[string]bool{first.arg(0): true}
	for _, g := range syncGroups {
		var members []string
		for _, k := range g.kids {
			if k.kw == "group" {
				for _, m := range k.kids {
					members = append(members, m.kw)
					members = append(members, m.args...)
				}
			} else {
				im.reportN(k, "no equivalent in a sync group: the pair has one set of VIPs that always fails over together; ignored")
			}
		}
		if contains(members, first.arg(0)) {
			for _, m := range members {
				together[m] = true
			}
		}
	}
	fo := &failover{src: first}
	iface, vrid := im.instance(first, fo, true)
	for _, in := range insts[1:] {
		if together[in.arg(0)] {
			im.instance(in, fo, false)
			continue
		}
		im.reportN(in, "a second VRRP instance outside the first's sync group: the director pair has one active side for every VIP; not carried over (if it is mastered on the same node, add its VIPs to failover.vips; if on the other, run a second pair)")
	}
	if iface == "" {
		im.reportN(first, "no interface; failover block left out")
		return
	}
	if len(fo.links) == 0 {
		fo.links = append(fo.links, flow([]kv{{"interface", q(iface)}, {"multicast", q("239.192.0.18")}}))
		im.reportN(first, "VRRP multicast becomes director heartbeats to 239.192.0.18, UDP port 694, on %s: let them through the firewalls of both directors", iface)
	}
	if im.syncSrc != nil && fo.sync == "" {
		id := im.syncID
		if id < 0 {
			id = vrid
		}
		fo.sync = im.syncBlock(im.syncSrc, im.syncIface, id)
	}
	im.reportN(first, "the pair signs its heartbeats with the key in %s (VRRP authentication is not carried over): create it on one director (head -c 32 /dev/urandom | base64 > %s; chmod 0600) and copy it to the other", AuthKeyFile, AuthKeyFile)
	im.fo = fo
}

func (im *importRun) syncBlock(n *node, iface string, id int) string {
	if id < 0 || id > 255 {
		im.reportN(n, "sync id %d is not 0-255; 0 used", id)
		id = 0
	}
	return flow([]kv{{"interface", q(iface)}, {"sync_id", strconv.Itoa(id)}})
}

// instance reads one vrrp_instance into fo; main says it is the first,
// whose settings make the block (the others give only their VIPs).
func (im *importRun) instance(in *node, fo *failover, main bool) (string, int) {
	iface, vrid := "", 0
	for _, k := range in.kids {
		if k.kw == "interface" {
			iface = k.arg(0)
		}
	}
	prio, advert, preempt := "100", 1.0, true
	var notify []string
	var peers []*node
	var syncNode *node
	for _, k := range in.kids {
		switch k.kw {
		case "interface", "state":
			// the director elects by priority; the initial state is its own
		case "virtual_router_id":
			vrid, _ = strconv.Atoi(k.arg(0))
		case "priority":
			prio = k.arg(0)
		case "advert_int":
			if v, err := strconv.ParseFloat(k.arg(0), 64); err == nil && v > 0 {
				advert = v
			}
		case "nopreempt":
			preempt = false
		case "virtual_ipaddress", "virtual_ipaddress_excluded":
			for _, v := range k.kids {
				im.vip(v, iface, fo)
			}
		case "unicast_peer":
			peers = append(peers, k.kids...)
		case "notify_master", "notify_backup", "notify_fault", "notify_stop", "notify":
			notify = append(notify, fmt.Sprintf("%s: %s", k.kw, strings.Join(k.args, " ")))
			if main {
				im.reportN(k, "director runs one program as `notify ROLE` (active, standby, fault, init): write %s to run this for the matching role", NotifyProgram)
			}
		case "lvs_sync_daemon_interface":
			syncNode = k
		case "authentication":
			// said once for the block: the key file replaces it
		case "track_script", "track_interface", "track_file", "track_process", "track_bfd":
			im.reportN(k, "no equivalent: director does not track scripts or interfaces (a VIP interface down puts it in fault; ping_nodes track reachability)")
		case "lvs_sync_daemon_inteface":
			im.reportN(k, "unknown keyword (lvs_sync_daemon_interface misspelt): keepalived ignores it too, so no sync daemon is carried over; add failover.sync if one was meant")
		case "preempt_delay":
			im.reportN(k, "no equivalent: with auto_failback the higher priority takes over at once")
		default:
			im.reportN(k, "no director equivalent in a vrrp_instance; ignored")
		}
	}
	if !main {
		if syncNode != nil {
			im.reportN(syncNode, "the sync daemon of the first instance (line %d) is kept; this one is left out", in.line)
		}
		return iface, vrid
	}
	if syncNode != nil && im.syncSrc == nil {
		fo.sync = im.syncBlock(syncNode, syncNode.arg(0), vrid)
	}
	for i, p := range peers {
		if i > 0 {
			im.reportN(p, "a pair has one peer; only the first unicast_peer is carried over")
			break
		}
		fo.links = append(fo.links, flow([]kv{{"interface", q(iface)}, {"peer", q(p.kw)}}))
	}
	fo.kvs = append(fo.kvs, kv{"priority", num(prio)}, kv{"auto_failback", strconv.FormatBool(preempt)})
	// keepalived's backup takes over after 3 adverts missed (plus a skew of
	// under one advert); director's deadtime is that silence.
	dead := 3 * advert
	fo.kvs = append(fo.kvs, kv{"keepalive", dur(advert)}, kv{"deadtime", dur(dead)})
	if dead > 5 {
		fo.kvs = append(fo.kvs, kv{"initdead", dur(dead)})
	}
	fo.kvs = append(fo.kvs, kv{"auth_key_file", q(AuthKeyFile)})
	if len(notify) > 0 {
		fo.kvs = append(fo.kvs, kv{"notify", q(NotifyProgram)})
	}
	return iface, vrid
}

// vip is one line of virtual_ipaddress: ADDR[/LEN] [dev IF] [label L] ...
func (im *importRun) vip(v *node, iface string, fo *failover) {
	addr := v.kw
	if !strings.Contains(addr, "/") {
		if a, err := netip.ParseAddr(addr); err == nil {
			addr = fmt.Sprintf("%s/%d", a, a.BitLen())
		}
	}
	for i := 0; i < len(v.args); i++ {
		switch v.args[i] {
		case "dev":
			iface = v.arg(i + 1)
			i++
		case "label", "brd", "broadcast", "scope", "use_vmac", "no_track", "preferred_lft", "metric":
			im.reportN(v, "%s %s: no equivalent on director's VIPs; left out", v.args[i], v.arg(i+1))
			i++
		default:
			im.reportN(v, "%q: unknown VIP option; ignored", v.args[i])
		}
	}
	entry := flow([]kv{{"address", q(addr)}, {"interface", q(iface)}})
	for _, prev := range fo.vips {
		if strings.HasPrefix(prev, "{address: "+q(addr)+",") {
			im.reportN(v, "the same VIP twice in the pair's instances; written once")
			return
		}
	}
	fo.vips = append(fo.vips, entry)
	fo.vipSrc = append(fo.vipSrc, v)
}
