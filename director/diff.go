package director

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/cloudflare/ipvs"
)

// OpKind is one kind of kernel change.
type OpKind int

// Kinds of change, in the order a plan applies them: new capacity is
// added before old is taken away.
const (
	CreateService OpKind = iota
	UpdateService
	CreateDest
	UpdateDest
	RemoveDest
	RemoveService
)

var opNames = [...]string{"create-service", "update-service", "create-destination", "update-destination", "remove-destination", "remove-service"}

func (k OpKind) String() string { return opNames[k] }

// Op is one change to the kernel's table.
type Op struct {
	Kind    OpKind
	Name    string // the service's name in the config, if it has one
	Service ipvs.Service
	Dest    ipvs.Destination // for destination ops
	// Old is what the kernel held before an update, for the log.
	OldService ipvs.Service
	OldDest    ipvs.Destination

	// seq, from 1, orders the destination ops of an Ordered service: the
	// kernel's list depends on the order they run in (order.go).
	seq int
	// move marks the removal of a destination that is re-added at once,
	// to bring it to the head of the kernel's list.
	move bool
}

func (o Op) String() string {
	svc := KeyOf(o.Service).String()
	if o.Name != "" {
		svc = fmt.Sprintf("%s (%s)", o.Name, svc)
	}
	switch o.Kind {
	case CreateDest, UpdateDest, RemoveDest:
		return fmt.Sprintf("%s %s -> %s", o.Kind, svc, DestKeyOf(o.Dest))
	}
	return fmt.Sprintf("%s %s", o.Kind, svc)
}

// Plan is the difference between a desired and a current table.
type Plan struct {
	Ops []Op
	// Foreign are services in the kernel that the director does not own
	// and leaves alone.
	Foreign []SvcKey
	// compared are the desired services that were not already known to
	// match current: the only ones a successful plan brings to match.
	compared []SvcKey
}

// Diff computes the changes that make current equal desired for every
// service the director owns. owned reports whether a service absent from
// desired was the director's (and so is to be removed) rather than
// someone else's (and so left alone).
func Diff(desired, current Table, owned func(SvcKey) bool) Plan {
	var p Plan
	if len(current) == 0 {
		// A cold start: every op is known ahead, and growing the slice
		// of 110,000 (some hundred bytes each) to it costs more than
		// counting.
		n := 0
		for _, want := range desired {
			n += 1 + len(want.Dests)
		}
		p.Ops = make([]Op, 0, n)
	}
	found := 0
	for key, want := range desired {
		have, ok := current[key]
		if ok {
			found++
			if have.matches == want {
				continue // found equal before, and neither side changed since
			}
		}
		p.compared = append(p.compared, key)
		if !ok {
			p.Ops = append(p.Ops, Op{Kind: CreateService, Name: want.Name, Service: want.Service})
			if want.Ordered {
				p.Ops = append(p.Ops, orderedDestOps(want, &Entry{Service: want.Service})...)
				continue
			}
			for _, d := range want.Dests {
				p.Ops = append(p.Ops, Op{Kind: CreateDest, Name: want.Name, Service: want.Service, Dest: d})
			}
			continue
		}
		p.Ops = append(p.Ops, DiffEntry(want, have)...)
	}
	// Every service in the kernel is a desired one unless some were not
	// found: only then is there anything to remove or leave alone.
	if found < len(current) {
		for key, have := range current {
			if _, ok := desired[key]; ok {
				continue
			}
			if owned(key) {
				p.Ops = append(p.Ops, Op{Kind: RemoveService, Name: have.Name, Service: have.Service})
			} else {
				p.Foreign = append(p.Foreign, key)
			}
		}
	}
	sortOps(p.Ops)
	slices.SortFunc(p.Foreign, compareSvcKey)
	return p
}

// DiffEntry computes the changes within one service present on both
// sides: edits in place, never delete and re-add, so that connections
// keep going.
//
// For an Ordered want, the destination ops also bring the kernel's list
// to want's order and last weights (orderedDestOps), and run in the
// order they are returned.
func DiffEntry(want, have *Entry) []Op {
	var ops []Op
	if !sameService(want.Service, have.Service) {
		ops = append(ops, Op{Kind: UpdateService, Name: want.Name, Service: want.Service, OldService: have.Service})
	}
	if want.Ordered {
		return append(ops, orderedDestOps(want, have)...)
	}
	return append(ops, diffDests(want, have)...)
}

// diffDests is DiffEntry's destination ops, in any order: edits in place.
func diffDests(want, have *Entry) []Op {
	var ops []Op
	// Both sides are sorted by key: one walk finds every difference.
	w, h := want.Dests, have.Dests
	for i, j := 0, 0; i < len(w) || j < len(h); {
		var c int
		switch {
		case i == len(w):
			c = 1
		case j == len(h):
			c = -1
		case sameKey(w[i], h[j]):
			c = 0
		default:
			c = compareDest(w[i], h[j])
		}
		switch {
		case c < 0:
			ops = append(ops, Op{Kind: CreateDest, Name: want.Name, Service: want.Service, Dest: w[i]})
			i++
		case c > 0:
			ops = append(ops, Op{Kind: RemoveDest, Name: want.Name, Service: want.Service, Dest: h[j]})
			j++
		default:
			if !sameDest(w[i], h[j]) {
				ops = append(ops, Op{Kind: UpdateDest, Name: want.Name, Service: want.Service, Dest: w[i], OldDest: h[j]})
			}
			i++
			j++
		}
	}
	return ops
}

// sortOps orders a plan by kind, then by object, so plans are stable and
// a service exists before its destinations are added. Destinations are
// added in key order, so each lands at the end of the view's slice. The
// destination ops of an Ordered service (seq > 0) keep their sequence,
// all in the place of its additions.
func sortOps(ops []Op) {
	rank := func(o Op) OpKind {
		if o.seq > 0 {
			return CreateDest
		}
		return o.Kind
	}
	// A stable sort of the ops themselves (some hundred bytes each)
	// moves them O(n log n) times, each compare making their keys again:
	// on a cold start's 110,000 that was most of the director's own work.
	// Their keys are made once and their indexes sorted, ties kept in
	// place by the index, which is the same order.
	type sortKey struct {
		rank OpKind
		svc  SvcKey
		seq  int
		dest DestKey
		kind OpKind
	}
	keys := make([]sortKey, len(ops))
	idx := make([]int32, len(ops))
	for i := range ops {
		o := &ops[i]
		keys[i] = sortKey{rank(*o), KeyOf(o.Service), o.seq, DestKeyOf(o.Dest), o.Kind}
		idx[i] = int32(i)
	}
	slices.SortFunc(idx, func(i, j int32) int {
		a, b := &keys[i], &keys[j]
		if c := cmp.Compare(a.rank, b.rank); c != 0 {
			return c
		}
		if c := compareSvcKey(a.svc, b.svc); c != 0 {
			return c
		}
		if c := cmp.Compare(a.seq, b.seq); c != 0 {
			return c
		}
		c := compareDestKey(a.dest, b.dest)
		if a.kind == RemoveDest {
			// Last first: each removal from the view's sorted slice
			// is then at its end, and removing many stays linear.
			c = -c
		}
		return cmp.Or(c, cmp.Compare(i, j))
	})
	// ops[k] takes the op at idx[k], in place, cycle by cycle (a done
	// place is marked idx[k] == k): a copy of them all is as large
	// again.
	for start := range idx {
		if int(idx[start]) == start {
			continue
		}
		tmp := ops[start]
		k := start
		for {
			j := int(idx[k])
			idx[k] = int32(k)
			if j == start {
				ops[k] = tmp
				break
			}
			ops[k] = ops[j]
			k = j
		}
	}
}

func compareSvcKey(a, b SvcKey) int {
	return cmp.Or(
		cmp.Compare(a.FWMark, b.FWMark),
		cmp.Compare(a.Family, b.Family),
		cmp.Compare(a.Protocol, b.Protocol),
		a.Addr.Compare(b.Addr),
		cmp.Compare(a.Port, b.Port),
	)
}

func compareDestKey(a, b DestKey) int {
	return cmp.Or(a.Addr.Compare(b.Addr), cmp.Compare(a.Port, b.Port))
}
