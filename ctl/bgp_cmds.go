package ctl

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/directorlb/director/control"
)

func runDrainNode(ctx context.Context, env *Env, args []string) error {
	return nodeCmd(ctx, env, control.CmdDrainNode, args)
}

func runEnableNode(ctx context.Context, env *Env, args []string) error {
	return nodeCmd(ctx, env, control.CmdEnableNode, args)
}

// nodeCmd takes this director of a bgp group out of the routers' paths
// (drain-node) or puts it back (enable-node). directord answers once the
// speaker has been told; the routers converge within their own time.
func nodeCmd(ctx context.Context, env *Env, cmd control.Command, args []string) error {
	fs := newFlags(env, string(cmd))
	sock := newSocketFlags(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	socket, err := sock.path()
	if err != nil {
		return err
	}
	var st control.BGPStatus
	if err := control.Call(ctx, socket, control.Request{Cmd: cmd}, &st); err != nil {
		return err
	}
	n := 0
	for _, v := range st.VIPs {
		if v.Announced {
			n++
		}
	}
	if cmd == control.CmdDrainNode {
		fmt.Fprintf(env.Stdout, "node drained: %d VIP(s) announced; the kernel keeps forwarding what still arrives (enable-node undoes it)\n", n)
	} else {
		fmt.Fprintf(env.Stdout, "node enabled: %d of %d VIP(s) announced\n", n, len(st.VIPs))
	}
	return nil
}

// writeBGP prints a bgp group director's sessions, VIPs and group.
func writeBGP(env *Env, b *control.BGPStatus, now time.Time) {
	if b == nil {
		return
	}
	state := "announcing"
	switch {
	case b.Stopping:
		state = "STOPPING (withdrawn, draining)"
	case b.Drained:
		state = "DRAINED (directorctl enable-node announces again)"
	}
	fmt.Fprintf(env.Stdout, "bgp: %s\n", state)
	w := tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "  peer\tasn\tstate\tuptime\tbfd\tprefixes sent\tflaps\tlast error")
	for _, p := range b.Peers {
		up := "-"
		if !p.Since.IsZero() {
			up = now.Sub(p.Since).Round(time.Second).String()
		}
		bfd := p.BFD
		if bfd == "" {
			bfd = "-"
		}
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%d\t%d\t%s\n", p.Address, p.ASN, p.State, up, bfd, p.PrefixesSent, p.Flops, p.LastError)
	}
	w.Flush()
	w = tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "  vip\tservice\tannounced\thealthy\twhy not")
	for _, v := range b.VIPs {
		ann := "yes"
		if !v.Announced {
			ann = "NO"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%d/%d\t%s\n", v.VIP, v.Service, ann, v.Healthy, v.Servers, v.Reason)
	}
	w.Flush()
	g := b.Group
	if g == nil {
		return
	}
	fmt.Fprintf(env.Stdout, "group: digest %s, %d mismatched\n", g.Digest, g.Mismatched)
	w = tabwriter.NewWriter(env.Stdout, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "  node\talive\tlast seen\tconfig\tannounced")
	for _, m := range g.Members {
		name := m.Node
		if m.Self {
			name += " (this)"
		}
		if m.Drained {
			name += " (drained)"
		}
		alive := "yes"
		if !m.Alive && !m.Self {
			alive = "NO"
		}
		seen := "-"
		if !m.LastSeen.IsZero() && !m.Self {
			seen = now.Sub(m.LastSeen).Round(100*time.Millisecond).String() + " ago"
		}
		match := "same"
		if !m.DigestMatch {
			match = "MISMATCH " + m.Digest
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\n", name, alive, seen, match, strings.Join(m.Announced, " "))
	}
	w.Flush()
}
