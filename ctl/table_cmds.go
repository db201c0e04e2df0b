package ctl

import (
	"bufio"
	"context"
	"fmt"

	"github.com/directorlb/director/ipvsadm"
)

// These commands read and write the kernel directly, as ipvsadm does, so
// they work with or without directord.

func openKernel(env *Env) (Kernel, error) {
	k, err := env.OpenKernel()
	if err != nil {
		return nil, fmt.Errorf("cannot open kernel IPVS: %w (is the ip_vs module loaded, and are you root?)", err)
	}
	return k, nil
}

// readTable reads the kernel's whole table in ipvsadm's order.
func readTable(env *Env) (*ipvsadm.Table, error) {
	k, err := openKernel(env)
	if err != nil {
		return nil, err
	}
	return ipvsadm.Read(k)
}

func runList(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "list")
	var o ipvsadm.ListOptions
	fs.BoolVar(&o.Numeric, "n", false, "numeric addresses and ports")
	fs.BoolVar(&o.Stats, "stats", false, "statistics: connections, packets, bytes")
	fs.BoolVar(&o.Rate, "rate", false, "rates: connections, packets and bytes per second")
	fs.BoolVar(&o.Exact, "exact", false, "exact numbers instead of K/M/G")
	fs.BoolVar(&o.Thresholds, "thresholds", false, "connection thresholds")
	fs.BoolVar(&o.Persistent, "persistent-conn", false, "persistent connections")
	fs.BoolVar(&o.TunnelInfo, "tun-info", false, "tunnel details")
	asJSON := fs.Bool("json", false, "JSON instead of ipvsadm's layout")
	if err := parse(fs, args); err != nil {
		return err
	}
	t, err := readTable(env)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(env.Stdout)
	if *asJSON {
		err = ipvsadm.WriteJSON(w, t)
	} else {
		err = ipvsadm.WriteList(w, t, o, nil)
	}
	if err != nil {
		return err
	}
	return w.Flush()
}

func runSave(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "save")
	// ipvsadm-save's -n is accepted for muscle memory: the output is
	// always numeric, as ipvsadm -R needs.
	fs.Bool("n", true, "numeric (always)")
	if err := parse(fs, args); err != nil {
		return err
	}
	t, err := readTable(env)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(env.Stdout)
	if err := ipvsadm.WriteSave(w, t); err != nil {
		return err
	}
	return w.Flush()
}

func runRestore(_ context.Context, env *Env, args []string) error {
	fs := newFlags(env, "restore")
	if err := parse(fs, args); err != nil {
		return err
	}
	k, err := openKernel(env)
	if err != nil {
		return err
	}
	return ipvsadm.Restore(k, env.Stdin)
}
