package director

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/config"
)

// In bgp mode every director of a group must build the same mh lookup
// table, whatever its history (docs/design/consistent-hashing.md §6). The
// kernel builds it from the service's list of destinations, in list
// order, each with its last_weight (the last non-zero weight written, or
// the weight it was added at, even 0). So for an mh or sh service in bgp
// mode the director keeps:
//   - every configured real server in the kernel, never removed on
//     failure: its weight is its configured weight W or 0;
//   - last_weight = W for each: a server not known healthy is added at W
//     and edited to 0 at once;
//   - the canonical order: the kernel inserts a new destination at the
//     head of the list, and the director adds in ascending (address,
//     port) order, so the list, and the dump, are descending.
//
// The kernel dumps the list in its order but never shows last_weight: a
// dumped weight above 0 is the last_weight, a dumped 0 hides it.

// ListDest is one destination's place in the kernel's list.
type ListDest struct {
	Key DestKey
	// Last is the last_weight: on a desired entry the configured weight;
	// on a view entry what the kernel holds, if Known.
	Last  uint32
	Known bool
}

// listOrdered reports whether a scheduler builds its table from the
// kernel's list order.
func listOrdered(scheduler string) bool { return scheduler == "mh" || scheduler == "sh" }

// dumpList is the list of a dump, in its order (head first), for a
// scheduler that depends on it; nil for the others.
func dumpList(scheduler string, dump []ipvs.Destination) []ListDest {
	if !listOrdered(scheduler) {
		return nil
	}
	out := make([]ListDest, 0, len(dump))
	for _, d := range dump {
		out = append(out, ListDest{Key: DestKeyOf(d), Last: d.Weight, Known: d.Weight > 0})
	}
	return out
}

// bgpList is s's canonical list in bgp mode: its real servers, descending
// by key, each with its configured weight. Of two with the same key, the
// later is kept, as makeDests keeps it.
func bgpList(s *config.Service, vip netip.Addr) []ListDest {
	out := make([]ListDest, 0, len(s.RealServers))
	for i := range s.RealServers {
		rs := &s.RealServers[i]
		if !s.ServesFrom(vip, rs) {
			continue // with vips: another VIP's kernel service has it
		}
		out = append(out, ListDest{Key: DestKey{Addr: rs.Address, Port: rs.Port}, Last: uint32(min(rs.Weight, 65535)), Known: true})
	}
	slices.SortStableFunc(out, func(a, b ListDest) int { return compareDestKey(a.Key, b.Key) })
	uniq := out[:0]
	for i, d := range out {
		if i+1 < len(out) && out[i+1].Key == d.Key {
			continue
		}
		uniq = append(uniq, d)
	}
	slices.Reverse(uniq)
	return uniq
}

// bgpWeight is a real server's weight in bgp mode: its configured weight
// while the weights source gives it any (healthy, not drained), else 0.
// Slow start and dynamic percentages are ignored: each non-zero weight
// written sets last_weight, and directors would step at different times.
func bgpWeight(s *config.Service, rs *config.RealServer, w Weights) int {
	if weight, present := w.Weight(s, rs); present && weight > 0 {
		return min(rs.Weight, 65535)
	}
	return 0
}

// bgpDest strips what bgp mode ignores: connection thresholds set the
// kernel's OVERLOAD flag from this director's own connection counts, and
// mh skips an overloaded server, so directors would choose differently.
func bgpDest(d *ipvs.Destination) {
	d.UpperThreshold, d.LowerThreshold = 0, 0
}

// orderedDestOps are the destination ops that bring have (a view entry)
// to an Ordered want, in the order they must run (§6 of the design):
//  1. remove what want lacks (the others keep their relative order);
//  2. keep the longest suffix T of want's list found in have's list in
//     the same relative order, setting weights in place (edit W then 0
//     when last_weight is unknown or wrong and the server is down);
//  3. add the others in ascending order, each at the head: a server
//     already there is removed and re-added at once (a move, which keeps
//     its connections: the kernel finds it again in its trash), added at
//     W, then edited to 0 unless up.
func orderedDestOps(want, have *Entry) []Op {
	var ops []Op
	add := func(kind OpKind, d ipvs.Destination, move bool) {
		ops = append(ops, Op{Kind: kind, Name: want.Name, Service: want.Service, Dest: d, seq: len(ops) + 1, move: move})
	}
	for _, h := range have.Dests {
		if _, ok := want.Dests.Get(DestKeyOf(h)); !ok {
			add(RemoveDest, h, false)
		}
	}
	list := have.List
	if list == nil && len(have.Dests) > 0 {
		// The order was not read (the scheduler was another): unknown,
		// so every server is put in place.
		list = []ListDest{}
	}
	pos := make(map[DestKey]int, len(list))
	for i, l := range list {
		if _, ok := want.Dests.Get(l.Key); ok {
			pos[l.Key] = i
		}
	}
	c := want.List
	t, prev := len(c), len(list)
	for t > 0 {
		p, ok := pos[c[t-1].Key]
		// A server to hold last_weight 0 cannot get it by an edit.
		if !ok || p >= prev || (c[t-1].Last == 0 && !(list[p].Known && list[p].Last == 0)) {
			break
		}
		prev, t = p, t-1
	}
	for _, l := range c[t:] {
		d, _ := want.Dests.Get(l.Key)
		h, _ := have.Dests.Get(l.Key)
		was := list[pos[l.Key]]
		if !was.Known || was.Last != l.Last {
			if d.Weight == l.Last {
				add(UpdateDest, d, false)
				continue
			}
			full := d
			full.Weight = l.Last
			add(UpdateDest, full, false)
			add(UpdateDest, d, false)
			continue
		}
		if !sameDest(d, h) {
			add(UpdateDest, d, false)
		}
	}
	for i := t - 1; i >= 0; i-- {
		l := c[i]
		d, _ := want.Dests.Get(l.Key)
		if h, ok := have.Dests.Get(l.Key); ok {
			add(RemoveDest, h, true)
		}
		full := d
		full.Weight = l.Last
		add(CreateDest, full, false)
		if d.Weight != l.Last {
			add(UpdateDest, d, false)
		}
	}
	for i := range ops {
		if ops[i].Kind == UpdateDest {
			ops[i].OldDest, _ = have.Dests.Get(DestKeyOf(ops[i].Dest))
		}
	}
	return ops
}

// recordList keeps a view entry's list in step with an op that succeeded,
// as the kernel changes its own.
func recordList(e *Entry, op Op) {
	if e.List == nil && (len(e.Dests) > 0 || !listOrdered(e.Service.Scheduler)) {
		return // not read, or not wanted
	}
	k := DestKeyOf(op.Dest)
	i := slices.IndexFunc(e.List, func(l ListDest) bool { return l.Key == k })
	switch op.Kind {
	case CreateDest, UpdateDest:
		if i < 0 {
			e.List = slices.Insert(e.List, 0, ListDest{Key: k, Last: op.Dest.Weight, Known: true})
		} else if op.Dest.Weight > 0 {
			e.List[i].Last, e.List[i].Known = op.Dest.Weight, true
		}
	case RemoveDest:
		if i >= 0 {
			e.List = slices.Delete(e.List, i, i+1)
		}
	case CreateService:
		if e.List == nil {
			e.List = []ListDest{}
		}
	}
}

// carryLast gives a freshly dumped entry the last weights the old view
// knew, which a dump cannot show for a server at 0, while the kernel's
// list kept the old one's relative order: a server removed and re-added
// behind the director's back would have come to the head.
func carryLast(old, fresh *Entry) {
	if old == nil || old.List == nil || fresh.List == nil {
		return
	}
	was := make(map[DestKey]ListDest, len(old.List))
	for _, l := range old.List {
		was[l.Key] = l
	}
	if !sameRelativeOrder(old.List, fresh.List) {
		return
	}
	for i, l := range fresh.List {
		if o, ok := was[l.Key]; ok && !l.Known && o.Known {
			fresh.List[i].Last, fresh.List[i].Known = o.Last, true
		}
	}
}

// sameRelativeOrder reports whether the keys a and b have in common come
// in the same order in both.
func sameRelativeOrder(a, b []ListDest) bool {
	in := func(l []ListDest) map[DestKey]bool {
		m := make(map[DestKey]bool, len(l))
		for _, x := range l {
			m[x.Key] = true
		}
		return m
	}
	ina, inb := in(a), in(b)
	i, j := 0, 0
	for {
		for i < len(a) && !inb[a[i].Key] {
			i++
		}
		for j < len(b) && !ina[b[j].Key] {
			j++
		}
		if i == len(a) || j == len(b) {
			return i == len(a) && j == len(b)
		}
		if a[i].Key != b[j].Key {
			return false
		}
		i, j = i+1, j+1
	}
}

// canonical reports whether a view entry's list is want's order. A list
// not read is not.
func canonical(want, have *Entry) bool {
	if have == nil || len(have.List) != len(want.List) {
		return false
	}
	for i, l := range want.List {
		if have.List[i].Key != l.Key {
			return false
		}
	}
	return true
}

// listString is a list's keys, head first, for the log.
func listString(l []ListDest) string {
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i] = x.Key.String()
	}
	return strings.Join(parts, " ")
}

// hasMove reports whether ops remove a destination to re-add it.
func hasMove(ops []Op) bool {
	return slices.ContainsFunc(ops, func(o Op) bool { return o.move })
}

// warnOrder logs each Ordered service of desired, among keys, whose
// kernel list holds servers in another relative order than the canonical
// one: left by someone else (an adopted table, ipvsadm). A list that only
// lacks servers, as after a reload adds some, is in order.
func (r *Reconciler) warnOrder(desired Table, keys []SvcKey) {
	for _, key := range keys {
		want, have := desired[key], r.view[key]
		if want == nil || !want.Ordered || have == nil || have.matches == want {
			continue
		}
		if have.List != nil && !sameRelativeOrder(want.List, have.List) {
			r.log.Warn("the kernel's list of an mh/sh service is not in canonical order: directors would build different tables; moving destinations into place",
				"service", want.Name, "key", key.String(), "kernel", listString(have.List), "canonical", listString(want.List))
		}
	}
}
