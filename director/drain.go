package director

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/directorlb/director/config"
)

// DrainKey names one real server of one service.
type DrainKey struct {
	Service string         `json:"service"`
	Server  netip.AddrPort `json:"server"`
}

// drainWeights puts drained servers at weight 0 (existing connections
// finish) over whatever the inner source says. The map belongs to the
// director's goroutine.
type drainWeights struct {
	inner   Weights
	drained map[DrainKey]bool
}

func (w drainWeights) Weight(s *config.Service, rs *config.RealServer) (int, bool) {
	if len(w.drained) > 0 && w.drained[DrainKey{s.Name, rs.AddrPort()}] {
		return 0, true
	}
	return w.inner.Weight(s, rs)
}

// Errors of Drain.
var (
	ErrNoSuchService = errors.New("no such service")
	ErrNoSuchServer  = errors.New("no such real server")
)

// DrainResult is what drain and enable report.
type DrainResult struct {
	Service string `json:"service"`
	Server  string `json:"server"`
	Drained bool   `json:"drained"`
	Changed bool   `json:"changed"`
}

// Drain takes a real server out (weight 0, its connections finish), or
// with drained false puts it back. address is "IP", "IP:port" or
// "[IPv6]:port"; an IP alone must match one real server of the service.
// The override survives reloads and restarts, and is dropped only when
// the server leaves the config.
func (d *Director) Drain(ctx context.Context, service, address string, drained bool) (DrainResult, error) {
	var res DrainResult
	var err error
	if e := d.do(ctx, func(st *state) { res, err = d.drain(st, service, address, drained) }); e != nil {
		return res, e
	}
	return res, err
}

func (d *Director) drain(st *state, service, address string, drained bool) (DrainResult, error) {
	s := st.cfg.Service(service)
	if s == nil {
		return DrainResult{}, fmt.Errorf("%w %q (configured: %s)", ErrNoSuchService, service, serviceNames(st.cfg))
	}
	rs, err := findServer(s, address)
	if err != nil {
		return DrainResult{}, err
	}
	key := DrainKey{s.Name, rs.AddrPort()}
	res := DrainResult{Service: s.Name, Server: key.Server.String(), Drained: drained, Changed: d.drained[key] != drained}
	if !res.Changed {
		return res, nil
	}
	if drained {
		d.drained[key] = true
	} else {
		delete(d.drained, key)
	}
	d.saveDrains()
	d.log.Info("manual override", "service", s.Name, "server", key.Server.String(), "drained", drained)
	e := DesiredEntry(s, d.weights)
	st.desired[KeyOf(e.Service)] = e
	if r := d.rec.ApplyEntry(e); r.Failed > 0 {
		return res, errors.Join(r.Errors...)
	}
	return res, nil
}

func serviceNames(cfg *config.Config) string {
	names := make([]string, len(cfg.Services))
	for i, s := range cfg.Services {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

// findServer resolves an admin's address to one real server.
func findServer(s *config.Service, address string) (*config.RealServer, error) {
	if ap, err := netip.ParseAddrPort(address); err == nil {
		for i := range s.RealServers {
			if s.RealServers[i].AddrPort() == ap {
				return &s.RealServers[i], nil
			}
		}
		return nil, fmt.Errorf("%w %s in service %s", ErrNoSuchServer, ap, s.Name)
	}
	ip, err := netip.ParseAddr(strings.Trim(address, "[]"))
	if err != nil {
		return nil, fmt.Errorf("%q is not an address (want IP or IP:port)", address)
	}
	var found []*config.RealServer
	for i := range s.RealServers {
		if s.RealServers[i].Address == ip {
			found = append(found, &s.RealServers[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w %s in service %s", ErrNoSuchServer, ip, s.Name)
	case 1:
		return found[0], nil
	}
	return nil, fmt.Errorf("%s is %d real servers of %s: name the port", ip, len(found), s.Name)
}

// pruneDrains forgets overrides of servers the new config no longer has.
func (d *Director) pruneDrains(cfg *config.Config) {
	changed := false
	for key := range d.drained {
		s := cfg.Service(key.Service)
		if s == nil || !slices.ContainsFunc(s.RealServers, func(r config.RealServer) bool { return r.AddrPort() == key.Server }) {
			delete(d.drained, key)
			changed = true
			d.log.Info("forgetting the drain of a server no longer configured", "service", key.Service, "server", key.Server.String())
		}
	}
	if changed {
		d.saveDrains()
	}
}

func (d *Director) loadDrains() {
	if d.drainPath == "" {
		return
	}
	b, err := os.ReadFile(d.drainPath)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			d.log.Warn("cannot read the drained servers; none are drained", "path", d.drainPath, "err", err)
		}
		return
	}
	var keys []DrainKey
	if err := json.Unmarshal(b, &keys); err != nil {
		d.log.Warn("ignoring a corrupt list of drained servers", "path", d.drainPath, "err", err)
		return
	}
	for _, k := range keys {
		d.drained[k] = true
	}
}

func (d *Director) saveDrains() {
	if d.drainPath == "" {
		return
	}
	keys := make([]DrainKey, 0, len(d.drained))
	for k := range d.drained {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b DrainKey) int {
		if c := strings.Compare(a.Service, b.Service); c != 0 {
			return c
		}
		return a.Server.Compare(b.Server)
	})
	b, _ := json.Marshal(keys)
	if err := writeFileAtomic(d.drainPath, b, 0o600); err != nil {
		d.log.Warn("cannot save the drained servers", "path", d.drainPath, "err", err)
	}
}
