package realserver

import (
	"fmt"
	"io"
	"slices"
	"strconv"
)

// Finding is one thing status looked at: fine, or a problem.
type Finding struct {
	OK   bool
	Text string
}

// Report is what status found for one spec.
type Report struct {
	Spec     Spec
	Findings []Finding
}

// Ready reports that nothing is wrong.
func (r Report) Ready() bool {
	return !slices.ContainsFunc(r.Findings, func(f Finding) bool { return !f.OK })
}

// Write prints the report: a heading, then a line per finding.
func (r Report) Write(w io.Writer) {
	fmt.Fprintf(w, "%s\n", describeSpec(r.Spec))
	for _, f := range r.Findings {
		word := "ok     "
		if !f.OK {
			word = "problem"
		}
		fmt.Fprintf(w, "%s  %s\n", word, f.Text)
	}
}

// Status checks that the kernel holds what spec needs, whoever set it:
// each VIP where it belongs, on no interface that would answer for it,
// ARP silenced for it on every interface that speaks ARP, and tunnels up
// with no reverse-path filter that would drop what they carry.
func Status(k Kernel, spec Spec) (Report, error) {
	if err := spec.Validate(); err != nil {
		return Report{}, err
	}
	rep := Report{Spec: spec}
	add := func(ok bool, format string, args ...any) {
		rep.Findings = append(rep.Findings, Finding{OK: ok, Text: fmt.Sprintf(format, args...)})
	}
	links, err := k.Links()
	if err != nil {
		return Report{}, err
	}
	byName := map[string]Link{}
	for _, l := range links {
		byName[l.Name] = l
	}
	addrs, err := k.Addrs()
	if err != nil {
		return Report{}, err
	}

	for _, t := range spec.tunnels() {
		switch l, ok := byName[t]; {
		case !ok:
			add(false, "%s does not exist (tun mode needs the %s module)", t, tunnelModule(t))
		case !l.Up:
			add(false, "%s is down", t)
		default:
			add(true, "%s is up", t)
		}
	}
	for _, a := range spec.VIPs {
		want := spec.vipLink(a)
		if onLink(addrs, a, want) {
			add(true, "VIP %s is on %s", a, want)
		} else {
			add(false, "VIP %s is missing from %s", a, want)
		}
		for _, x := range addrs {
			if x.Prefix.Addr() != a || x.Link == want {
				continue
			}
			if l := byName[x.Link]; l.Kind != "loopback" && !l.NoARP {
				proto := "ARP"
				if a.Is6() {
					proto = "neighbour solicitations"
				}
				add(false, "VIP %s is also on %s, which answers %s for it: clients would reach this server instead of the director", a, x.Link, proto)
			}
		}
	}
	if spec.has4() {
		if err := checkARP(k, spec, links, addrs, add); err != nil {
			return Report{}, err
		}
	}
	if spec.Mode == TUN && spec.has4() {
		if _, ok := byName[tunnelV4]; ok {
			all, dev, eff, err := effective(k, tunnelV4, "rp_filter")
			if err != nil {
				return Report{}, err
			}
			if eff == 1 {
				add(false, "rp_filter on %s is strict (all %d, %s %d): tunnelled packets from clients are dropped; it needs 0 or 2", tunnelV4, all, tunnelV4, dev)
			} else {
				add(true, "rp_filter on %s lets tunnelled packets in (all %d, %s %d)", tunnelV4, all, tunnelV4, dev)
			}
		}
	}
	return rep, nil
}

// checkARP looks at every interface that could answer ARP for an IPv4
// VIP: any of them answering would pull the VIP's traffic away from the
// director, not only the one facing it.
func checkARP(k Kernel, spec Spec, links []Link, addrs []Addr, add func(bool, string, ...any)) error {
	devs, err := arpInterfaces(k)
	if err != nil {
		return err
	}
	if spec.Interface != "" && !slices.Contains(devs, spec.Interface) {
		if slices.ContainsFunc(links, func(l Link) bool { return l.Name == spec.Interface }) {
			devs = append(devs, spec.Interface)
		} else {
			add(false, "interface %s does not exist", spec.Interface)
		}
	}
	if len(devs) == 0 {
		devs = []string{"all"}
	}
	for _, d := range devs {
		allIg, devIg, ig, err := effective(k, d, "arp_ignore")
		if err != nil {
			return err
		}
		allAn, devAn, an, err := effective(k, d, "arp_announce")
		if err != nil {
			return err
		}
		igOK := ig == 1 || ig == 2 || ig == 8
		anOK := an == 2
		switch {
		case igOK && anOK:
			add(true, "%s does not answer ARP for the VIPs (arp_ignore %d, arp_announce %d)", d, ig, an)
		default:
			if !igOK {
				add(false, "%s answers ARP for the VIPs: arp_ignore is %d (all %d, %s %d); it needs 1", d, ig, allIg, d, devIg)
			}
			if !anOK {
				add(false, "%s may use a VIP as its ARP source address: arp_announce is %d (all %d, %s %d); it needs 2", d, an, allAn, d, devAn)
			}
		}
	}
	return nil
}

// effective is what the kernel uses for the IPv4 conf setting name on
// dev: the larger of all's and dev's, for the settings read here.
func effective(k Kernel, dev, name string) (all, own, eff int, err error) {
	read := func(d string) (int, error) {
		s, err := k.Sysctl(conf(d, name))
		if err != nil {
			return 0, err
		}
		v, err := strconv.Atoi(s)
		if err != nil {
			return 0, fmt.Errorf("%s: %q is not a number", conf(d, name), s)
		}
		return v, nil
	}
	if all, err = read("all"); err != nil {
		return 0, 0, 0, err
	}
	if dev == "all" {
		return all, all, all, nil
	}
	if own, err = read(dev); err != nil {
		return 0, 0, 0, err
	}
	return all, own, max(all, own), nil
}
