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
	a, err := parseListArgs(args)
	if err != nil {
		return err
	}
	if a.help {
		return helpError{}
	}
	w := bufio.NewWriter(env.Stdout)
	// ipvsadm's precedence (process_options, CMD_LIST): connections,
	// then timeouts, then daemons, then the table.
	switch {
	case a.conns:
		r, err := openConns(env)
		if err != nil {
			return err
		}
		defer r.Close()
		err = ipvsadm.WriteConns(w, r, a.o, nil)
		if err != nil {
			return err
		}
	case a.timeout:
		k, err := openKernel(env)
		if err != nil {
			return err
		}
		c, err := k.Config()
		if err != nil {
			return fmt.Errorf("read IPVS timeouts: %w", err)
		}
		if err := ipvsadm.WriteTimeout(w, c); err != nil {
			return err
		}
	case a.daemon:
		ds, err := syncDaemons(env)
		if err != nil {
			return err
		}
		if err := ipvsadm.WriteDaemons(w, ds); err != nil {
			return err
		}
	default:
		t, err := readTable(env)
		if err != nil {
			return err
		}
		if a.json {
			err = ipvsadm.WriteJSON(w, t)
		} else {
			err = ipvsadm.WriteList(w, t, a.o, nil)
		}
		if err != nil {
			return err
		}
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
