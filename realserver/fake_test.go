package realserver

import (
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strings"
)

// fakeKernel is one namespace's links, addresses and IPv4 conf sysctls,
// with the kernel's rules that matter here: a link brings its own conf
// sysctls (copied from "default"), and sysctls of a missing link do not
// exist.
type fakeKernel struct {
	sysctls  map[Sysctl]string
	links    []Link
	addrs    []Addr
	defRoute string

	noAdmin   bool           // CheckAdmin fails, and so does every change
	noTunnels bool           // no ipip / ip6_tunnel module
	failSet   map[Sysctl]int // SetSysctl of the key fails after this many successes
	failDel   bool           // DelAddr fails
}

var confNames = []string{"arp_ignore", "arp_announce", "rp_filter"}

func newFake() *fakeKernel {
	k := &fakeKernel{sysctls: map[Sysctl]string{}, failSet: map[Sysctl]int{}}
	for _, d := range []string{"all", "default"} {
		for _, n := range confNames {
			k.sysctls[conf(d, n)] = "0"
		}
	}
	k.addLink(Link{Name: "lo", Up: true, Kind: "loopback"})
	return k
}

func (k *fakeKernel) addLink(l Link) {
	k.links = append(k.links, l)
	for _, n := range confNames {
		k.sysctls[conf(l.Name, n)] = k.sysctls[conf("default", n)]
	}
}

// snapshot is everything the helper could touch, for before/after
// comparisons.
func (k *fakeKernel) snapshot() string {
	var b strings.Builder
	for _, key := range slices.Sorted(maps.Keys(k.sysctls)) {
		fmt.Fprintf(&b, "%s=%s\n", key, k.sysctls[key])
	}
	for _, l := range k.links {
		fmt.Fprintf(&b, "link %+v\n", l)
	}
	as := slices.Clone(k.addrs)
	slices.SortFunc(as, func(a, b Addr) int { return strings.Compare(a.Link+a.Prefix.String(), b.Link+b.Prefix.String()) })
	for _, a := range as {
		fmt.Fprintf(&b, "addr %s %s\n", a.Link, a.Prefix)
	}
	return b.String()
}

func (k *fakeKernel) link(name string) int {
	return slices.IndexFunc(k.links, func(l Link) bool { return l.Name == name })
}

func (k *fakeKernel) Sysctl(key Sysctl) (string, error) {
	v, ok := k.sysctls[key]
	if !ok {
		return "", fmt.Errorf("read %s: %w", key, os.ErrNotExist)
	}
	return v, nil
}

func (k *fakeKernel) SetSysctl(key Sysctl, value string) error {
	if err := k.CheckWritable(key); err != nil {
		return err
	}
	if n, ok := k.failSet[key]; ok {
		if n == 0 {
			return fmt.Errorf("set %s: injected failure", key)
		}
		k.failSet[key] = n - 1
	}
	k.sysctls[key] = value
	return nil
}

func (k *fakeKernel) CheckWritable(key Sysctl) error {
	if _, ok := k.sysctls[key]; !ok {
		return fmt.Errorf("%s: %w", key, os.ErrNotExist)
	}
	if k.noAdmin {
		return fmt.Errorf("%s: %w", key, os.ErrPermission)
	}
	return nil
}

func (k *fakeKernel) CheckAdmin() error {
	if k.noAdmin {
		return fmt.Errorf("no CAP_NET_ADMIN: %w", os.ErrPermission)
	}
	return nil
}

func (k *fakeKernel) Link(name string) (Link, error) {
	if i := k.link(name); i >= 0 {
		return k.links[i], nil
	}
	return Link{}, fmt.Errorf("%s: %w", name, ErrNoLink)
}

func (k *fakeKernel) Links() ([]Link, error) { return slices.Clone(k.links), nil }

func (k *fakeKernel) CreateTunnel(name string) error {
	if k.noAdmin {
		return os.ErrPermission
	}
	if k.noTunnels {
		return errors.New("operation not supported")
	}
	if k.link(name) >= 0 {
		return ErrExists
	}
	kind := map[string]string{tunnelV4: "ipip", tunnelV6: "ip6tnl"}[name]
	k.addLink(Link{Name: name, NoARP: true, Kind: kind})
	return nil
}

func (k *fakeKernel) DeleteLink(name string) error {
	i := k.link(name)
	if i < 0 {
		return ErrNoLink
	}
	k.links = slices.Delete(k.links, i, i+1)
	for _, n := range confNames {
		delete(k.sysctls, conf(name, n))
	}
	k.addrs = slices.DeleteFunc(k.addrs, func(a Addr) bool { return a.Link == name })
	return nil
}

func (k *fakeKernel) SetLinkUp(name string, up bool) error {
	i := k.link(name)
	if i < 0 {
		return ErrNoLink
	}
	k.links[i].Up = up
	return nil
}

func (k *fakeKernel) Addrs() ([]Addr, error) { return slices.Clone(k.addrs), nil }

func (k *fakeKernel) AddAddr(link string, a netip.Addr) error {
	if k.link(link) < 0 {
		return ErrNoLink
	}
	p := netip.PrefixFrom(a, a.BitLen())
	if slices.Contains(k.addrs, Addr{link, p}) {
		return ErrExists
	}
	k.addrs = append(k.addrs, Addr{link, p})
	return nil
}

func (k *fakeKernel) DelAddr(link string, a netip.Addr) error {
	if k.failDel {
		return fmt.Errorf("remove %s from %s: injected failure", a, link)
	}
	n := len(k.addrs)
	k.addrs = slices.DeleteFunc(k.addrs, func(x Addr) bool { return x.Link == link && x.Prefix.Addr() == a })
	if len(k.addrs) == n {
		return errors.New("cannot assign requested address")
	}
	return nil
}

func (k *fakeKernel) DefaultRouteLink() (string, error) { return k.defRoute, nil }
