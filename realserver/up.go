package realserver

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// ErrPermission is matched when the helper may not change the kernel:
// not root, or no CAP_NET_ADMIN, or /proc/sys read-only.
var ErrPermission = errors.New("permission denied")

// Up makes the kernel hold what spec needs and records, in store, the
// earlier value of everything it changes. Run again, it changes nothing
// that is already right; with another spec, it also undoes what the
// earlier run did that the new spec no longer needs. It either succeeds or
// leaves the kernel and the state file as it found them. What it does is
// written to out, a line per change.
func Up(k Kernel, store Store, spec Spec, out io.Writer) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	prev, err := store.Load()
	if err != nil {
		return err
	}
	iface, err := facingInterface(k, spec)
	if err != nil {
		return err
	}
	steps := spec.plan(iface)
	if err := preflight(k, store, steps, prev); err != nil {
		return err
	}

	st := &State{Mode: spec.Mode, VIPs: spec.VIPs, Interface: iface}
	if prev != nil {
		st.Changes = slices.Clone(prev.Changes)
	}
	r := &run{k: k, store: store, st: st, out: out}
	for _, s := range steps {
		if err := r.ensure(s); err != nil {
			if rerr := r.rollback(prev); rerr != nil {
				return fmt.Errorf("%w; and undoing this run failed: %w", err, rerr)
			}
			return err
		}
	}
	pruneErr := r.prune(steps)

	if prev == nil || !sameState(prev, st) {
		if err := store.Save(st); err != nil {
			return errors.Join(pruneErr, err)
		}
	}
	if r.changed == 0 && pruneErr == nil {
		fmt.Fprintf(out, "up: %s already in place; nothing changed\n", describeSpec(st.Spec()))
	}
	return pruneErr
}

// Down undoes, last first, every change the state file records, then
// removes the file. Nothing it did not record is touched. A change it
// cannot undo stays recorded, so that down can be run again.
func Down(k Kernel, store Store, out io.Writer) error {
	st, err := store.Load()
	if err != nil {
		return err
	}
	if st == nil {
		fmt.Fprintf(out, "down: nothing to undo (no state at %s)\n", store.Path)
		return nil
	}
	if err := preflight(k, store, nil, st); err != nil {
		return err
	}
	r := &run{k: k, store: store, st: st, out: out}
	var kept []Change
	var errs []error
	for i := len(st.Changes) - 1; i >= 0; i-- {
		c := st.Changes[i]
		if err := r.undo(c, ""); err != nil {
			errs = append(errs, err)
			kept = append(kept, c)
		}
	}
	if len(errs) == 0 {
		if err := store.Remove(); err != nil {
			return err
		}
		if r.changed == 0 {
			fmt.Fprintf(out, "down: nothing left to undo\n")
		}
		return nil
	}
	slices.Reverse(kept)
	st.Changes = kept
	if err := store.Save(st); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// facingInterface is the interface whose ARP behaviour matters: the one
// named, else the IPv4 default route's, else the only one that could be.
// IPv6 has no ARP to silence, so an IPv6-only spec needs none.
func facingInterface(k Kernel, spec Spec) (string, error) {
	if spec.Interface != "" {
		if _, err := k.Link(spec.Interface); err != nil {
			return "", fmt.Errorf("interface %s: %w", spec.Interface, err)
		}
		return spec.Interface, nil
	}
	if !spec.has4() {
		return "", nil
	}
	if def, err := k.DefaultRouteLink(); err != nil {
		return "", err
	} else if def != "" {
		return def, nil
	}
	cands, err := arpInterfaces(k)
	if err != nil {
		return "", err
	}
	if len(cands) == 1 {
		return cands[0], nil
	}
	return "", fmt.Errorf("%w: there is no IPv4 default route and %d interfaces could face the director (%s); say which with --interface",
		ErrSpec, len(cands), strings.Join(cands, ", "))
}

// arpInterfaces are the links that would answer ARP: up, not NOARP, not
// lo, with an IPv4 address.
func arpInterfaces(k Kernel) ([]string, error) {
	links, err := k.Links()
	if err != nil {
		return nil, err
	}
	addrs, err := k.Addrs()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		if !l.Up || l.NoARP || l.Kind == "loopback" {
			continue
		}
		if slices.ContainsFunc(addrs, func(a Addr) bool { return a.Link == l.Name && a.Prefix.Addr().Is4() }) {
			out = append(out, l.Name)
		}
	}
	return out, nil
}

// preflight refuses, before anything changes, what would fail half-way
// for want of rights: a half-prepared real server is worse than none.
func preflight(k Kernel, store Store, steps []step, st *State) error {
	var keys []Sysctl
	for _, s := range steps {
		if s.kind == SysctlSet {
			keys = append(keys, s.sysctl)
		}
	}
	if st != nil {
		for _, c := range st.Changes {
			if c.Kind == SysctlSet {
				keys = append(keys, c.Sysctl)
			}
		}
	}
	denied := func(err error) error {
		return fmt.Errorf("%w: realserver changes the kernel's network settings and must run as root: %w", ErrPermission, err)
	}
	if err := k.CheckAdmin(); err != nil {
		return denied(err)
	}
	for _, key := range keys {
		err := k.CheckWritable(key)
		// A sysctl of a link not made yet (tunl0) or gone since is
		// checked at its turn; "all" stands for its rights meanwhile.
		if errors.Is(err, os.ErrNotExist) {
			err = k.CheckWritable(conf("all", "arp_ignore"))
		}
		if err != nil {
			return denied(err)
		}
	}
	if err := store.CheckWritable(); err != nil {
		return denied(err)
	}
	return nil
}

// run is one up or down: the state it keeps current, and the journal of
// what it did, for undoing a failed up.
type run struct {
	k       Kernel
	store   Store
	st      *State
	out     io.Writer
	journal []done
	changed int
}

// done is one change this run made, with the value before it.
type done struct {
	Change
	before string
}

func (r *run) say(format string, args ...any) {
	r.changed++
	fmt.Fprintf(r.out, format+"\n", args...)
}

func (r *run) recorded(target string) int {
	return slices.IndexFunc(r.st.Changes, func(c Change) bool { return c.target() == target })
}

// record notes c in the state and saves it at once, so that a crash
// later in the run still leaves down a full account. A change already
// recorded keeps its original Old value.
func (r *run) record(c Change) error {
	if i := r.recorded(c.target()); i >= 0 {
		r.st.Changes[i].New = c.New
	} else {
		r.st.Changes = append(r.st.Changes, c)
	}
	return r.store.Save(r.st)
}

func (r *run) ensure(s step) error {
	switch s.kind {
	case LinkCreated:
		if _, err := r.k.Link(s.link); err == nil {
			return nil
		} else if !errors.Is(err, ErrNoLink) {
			return err
		}
		err := r.k.CreateTunnel(s.link)
		if errors.Is(err, ErrExists) {
			// Creating the first tunnel loaded the module, whose own
			// catch-all device it is: the kernel's, not ours to delete.
			return nil
		}
		if err != nil {
			return fmt.Errorf("tun mode needs %s: %w (is the %s module available?)", s.link, err, tunnelModule(s.link))
		}
		if _, err := r.k.Link(s.link); err != nil {
			// The module made its own; ours failed quietly or is it.
			return fmt.Errorf("created %s but cannot see it: %w", s.link, err)
		}
		r.journal = append(r.journal, done{Change: Change{Kind: LinkCreated, Link: s.link}})
		r.say("created %s", s.link)
		return r.record(Change{Kind: LinkCreated, Link: s.link})

	case LinkRaised:
		l, err := r.k.Link(s.link)
		if err != nil {
			return err
		}
		if l.Up {
			return nil
		}
		if err := r.k.SetLinkUp(s.link, true); err != nil {
			return err
		}
		r.journal = append(r.journal, done{Change: Change{Kind: LinkRaised, Link: s.link}})
		r.say("set %s up", s.link)
		return r.record(Change{Kind: LinkRaised, Link: s.link})

	case AddrAdded:
		addrs, err := r.k.Addrs()
		if err != nil {
			return err
		}
		if onLink(addrs, s.addr, s.link) {
			return nil
		}
		if err := r.k.AddAddr(s.link, s.addr); errors.Is(err, ErrExists) {
			return nil
		} else if err != nil {
			return err
		}
		r.journal = append(r.journal, done{Change: Change{Kind: AddrAdded, Link: s.link, Address: s.addr}})
		r.say("added %s to %s", netip.PrefixFrom(s.addr, s.addr.BitLen()), s.link)
		return r.record(Change{Kind: AddrAdded, Link: s.link, Address: s.addr})

	case SysctlSet:
		cur, err := r.k.Sysctl(s.sysctl)
		if err != nil {
			return err
		}
		// Once recorded, only the wanted value will do: the recorded one
		// is the original, and accepting a stand-in would lose it.
		if i := r.recorded(s.target()); (i >= 0 && cur == s.want) || (i < 0 && s.ok(cur)) {
			return nil
		}
		if err := r.k.SetSysctl(s.sysctl, s.want); err != nil {
			return err
		}
		r.journal = append(r.journal, done{Change: Change{Kind: SysctlSet, Sysctl: s.sysctl}, before: cur})
		r.say("set %s = %s (was %s)", s.sysctl, s.want, cur)
		return r.record(Change{Kind: SysctlSet, Sysctl: s.sysctl, Old: cur, New: s.want})
	}
	return fmt.Errorf("unknown step %q", s.kind)
}

func tunnelModule(link string) string {
	if link == tunnelV6 {
		return "ip6_tunnel"
	}
	return "ipip"
}

// onLink reports whether a is on link, with any prefix length.
func onLink(addrs []Addr, a netip.Addr, link string) bool {
	return slices.ContainsFunc(addrs, func(x Addr) bool { return x.Link == link && x.Prefix.Addr() == a })
}

// rollback undoes this run's changes, last first, and puts the state file
// back as it was.
func (r *run) rollback(prev *State) error {
	var errs []error
	for i := len(r.journal) - 1; i >= 0; i-- {
		d := r.journal[i]
		var err error
		switch d.Kind {
		case SysctlSet:
			err = r.k.SetSysctl(d.Sysctl, d.before)
		case AddrAdded:
			err = r.k.DelAddr(d.Link, d.Address)
		case LinkRaised:
			err = r.k.SetLinkUp(d.Link, false)
		case LinkCreated:
			err = r.k.DeleteLink(d.Link)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		// Keep the state as it is now: it records what stayed changed.
		return errors.Join(errs...)
	}
	if prev == nil {
		return r.store.Remove()
	}
	return r.store.Save(prev)
}

// prune undoes recorded changes that the new plan no longer has: a VIP
// dropped from the list, a mode or interface changed.
func (r *run) prune(steps []step) error {
	want := map[string]bool{}
	for _, s := range steps {
		want[s.target()] = true
	}
	var errs []error
	for i := len(r.st.Changes) - 1; i >= 0; i-- {
		c := r.st.Changes[i]
		if want[c.target()] {
			continue
		}
		if err := r.undo(c, " (no longer asked for)"); err != nil {
			errs = append(errs, err)
			continue
		}
		r.st.Changes = slices.Delete(r.st.Changes, i, i+1)
	}
	return errors.Join(errs...)
}

// undo puts back one recorded change. What is already as it was before,
// or is gone, needs nothing.
func (r *run) undo(c Change, why string) error {
	switch c.Kind {
	case SysctlSet:
		cur, err := r.k.Sysctl(c.Sysctl)
		if errors.Is(err, os.ErrNotExist) {
			r.say("skipped %s: its interface is gone%s", c.Sysctl, why)
			return nil
		}
		if err != nil {
			return err
		}
		if cur == c.Old {
			return nil
		}
		if err := r.k.SetSysctl(c.Sysctl, c.Old); err != nil {
			return err
		}
		if cur != c.New {
			r.say("restored %s = %s (it was changed to %s after up)%s", c.Sysctl, c.Old, cur, why)
		} else {
			r.say("restored %s = %s%s", c.Sysctl, c.Old, why)
		}
	case AddrAdded:
		addrs, err := r.k.Addrs()
		if err != nil {
			return err
		}
		if !onLink(addrs, c.Address, c.Link) {
			return nil
		}
		if err := r.k.DelAddr(c.Link, c.Address); err != nil {
			return err
		}
		r.say("removed %s from %s%s", netip.PrefixFrom(c.Address, c.Address.BitLen()), c.Link, why)
	case LinkRaised:
		l, err := r.k.Link(c.Link)
		if errors.Is(err, ErrNoLink) || (err == nil && !l.Up) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := r.k.SetLinkUp(c.Link, false); err != nil {
			return err
		}
		r.say("set %s down%s", c.Link, why)
	case LinkCreated:
		if _, err := r.k.Link(c.Link); errors.Is(err, ErrNoLink) {
			return nil
		}
		if err := r.k.DeleteLink(c.Link); err != nil {
			return err
		}
		r.say("deleted %s%s", c.Link, why)
	}
	return nil
}

func sameState(a, b *State) bool {
	return a.Mode == b.Mode && slices.Equal(a.VIPs, b.VIPs) && a.Interface == b.Interface && slices.Equal(a.Changes, b.Changes)
}

func describeSpec(s Spec) string {
	vips := make([]string, len(s.VIPs))
	for i, a := range s.VIPs {
		vips[i] = a.String()
	}
	out := fmt.Sprintf("%s for %s", s.Mode, strings.Join(vips, ", "))
	if s.Interface != "" {
		out += ", facing the director on " + s.Interface
	}
	return out
}
