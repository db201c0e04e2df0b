package director

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/rootfile"
)

// DrainKey names one real server of one service.
type DrainKey struct {
	Service string         `json:"service"`
	Server  netip.AddrPort `json:"server"`
}

// drainMark is the operator's last word on one server: drained or put
// back (kept, so that it can win over an older drain the peer still
// holds), and when.
type drainMark struct {
	drained bool
	at      time.Time
}

// newer: the later word wins; at the same instant a drain, the safe side.
func (m drainMark) newer(old drainMark) bool {
	if c := m.at.Compare(old.at); c != 0 {
		return c > 0
	}
	return m.drained && !old.drained
}

// DrainRecord is one drainMark as it is saved and shared with the peer.
type DrainRecord struct {
	Service string         `json:"service"`
	Server  netip.AddrPort `json:"server"`
	Drained bool           `json:"drained"`
	At      time.Time      `json:"at"`
}

// drainWeights puts drained servers at weight 0 (existing connections
// finish) over whatever the inner source says. The map belongs to the
// director's goroutine.
type drainWeights struct {
	inner   Weights
	drained map[DrainKey]drainMark
}

func (w drainWeights) Weight(s *config.Service, rs *config.RealServer) (int, bool) {
	if len(w.drained) > 0 && w.drained[DrainKey{s.Name, rs.AddrPort()}].drained {
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
// The word survives reloads, restarts and reboots, goes to the peer
// (OnDrains), and is dropped only when the server leaves the config.
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
	old, had := d.drained[key]
	res := DrainResult{Service: s.Name, Server: key.Server.String(), Drained: drained, Changed: old.drained != drained}
	if !res.Changed && had {
		return res, nil
	}
	// Later than any word already held, whatever this host's clock says:
	// an enable made here just after a drain made on a peer whose clock
	// runs ahead must still win.
	// Wall clock only (Round(0) drops the monotonic reading): the word
	// is compared with the peer's and the file's, which have no other.
	at := time.Now().Round(0)
	if had && !at.After(old.at) {
		at = old.at.Add(time.Nanosecond)
	}
	d.drained[key] = drainMark{drained: drained, at: at}
	d.drainsChanged()
	d.log.Info("manual override", "service", s.Name, "server", key.Server.String(), "drained", drained)
	if !res.Changed {
		return res, nil
	}
	return res, d.applyService(st, s)
}

// applyService converges one service after its weights changed.
func (d *Director) applyService(st *state, s *config.Service) error {
	var errs []error
	for _, e := range desiredEntriesIn(st.cfg, s, d.weights) {
		st.desired[KeyOf(e.Service)] = e
		if r := d.rec.ApplyEntry(e); r.Failed > 0 {
			errs = append(errs, r.Errors...)
		}
	}
	return errors.Join(errs...)
}

// MergeDrains takes the peer's records: each one newer than the word
// held here on a configured server replaces it, and the services whose
// weights that changes converge. Records of servers this config lacks
// are ignored.
func (d *Director) MergeDrains(ctx context.Context, recs []DrainRecord) error {
	return d.do(ctx, func(st *state) {
		changed := false
		services := map[string]bool{}
		for _, r := range recs {
			s := st.cfg.Service(r.Service)
			if s == nil || !slices.ContainsFunc(s.RealServers, func(rs config.RealServer) bool { return rs.AddrPort() == r.Server }) {
				continue
			}
			key, m := DrainKey{r.Service, r.Server}, drainMark{drained: r.Drained, at: r.At}
			old, had := d.drained[key]
			if had && !m.newer(old) {
				continue
			}
			d.drained[key] = m
			changed = true
			if old.drained != m.drained {
				services[r.Service] = true
				d.log.Info("manual override from the peer", "service", r.Service, "server", r.Server.String(), "drained", m.drained)
			}
		}
		if !changed {
			return
		}
		d.drainsChanged()
		for name := range services {
			if err := d.applyService(st, st.cfg.Service(name)); err != nil {
				d.log.Error("applying the peer's drain", "service", name, "err", err)
			}
		}
	})
}

// Drains returns every drain record held now.
func (d *Director) Drains(ctx context.Context) ([]DrainRecord, error) {
	var out []DrainRecord
	err := d.do(ctx, func(*state) { out = d.drainRecords() })
	return out, err
}

func (d *Director) drainRecords() []DrainRecord {
	out := make([]DrainRecord, 0, len(d.drained))
	for k, m := range d.drained {
		out = append(out, DrainRecord{Service: k.Service, Server: k.Server, Drained: m.drained, At: m.at})
	}
	slices.SortFunc(out, func(a, b DrainRecord) int {
		return cmp.Or(strings.Compare(a.Service, b.Service), a.Server.Compare(b.Server))
	})
	return out
}

// drainsChanged saves the records and tells the peer.
func (d *Director) drainsChanged() {
	recs := d.drainRecords()
	d.saveDrains(recs)
	if d.onDrains != nil {
		d.onDrains(recs)
	}
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

// pruneDrains forgets the words on servers the new config no longer has.
func (d *Director) pruneDrains(cfg *config.Config) {
	changed := false
	for key, m := range d.drained {
		s := cfg.Service(key.Service)
		if s == nil || !slices.ContainsFunc(s.RealServers, func(r config.RealServer) bool { return r.AddrPort() == key.Server }) {
			delete(d.drained, key)
			changed = true
			if m.drained {
				d.log.Info("forgetting the drain of a server no longer configured", "service", key.Service, "server", key.Server.String())
			}
		}
	}
	if changed {
		d.drainsChanged()
	}
}

// loadDrains reads the records saved before a restart or a reboot. The
// file must be root's, in a directory only root can write: anyone else
// could drain a server through it.
func (d *Director) loadDrains() {
	if d.drainPath == "" {
		return
	}
	b, err := rootfile.ReadState(d.drainPath, maxStateFile)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			d.log.Error("not trusting the saved drains; none are drained until they are set again or heard from the peer", "path", d.drainPath, "err", err)
		}
		return
	}
	var recs []DrainRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		d.log.Warn("ignoring a corrupt list of drained servers", "path", d.drainPath, "err", err)
		return
	}
	for _, r := range recs {
		if err := validDrainRecord(r); err != nil {
			d.log.Warn("ignoring a drain record", "path", d.drainPath, "err", err)
			continue
		}
		d.drained[DrainKey{r.Service, r.Server}] = drainMark{drained: r.Drained, at: r.At.Round(0)}
	}
}

// validDrainRecord refuses what no drain made here could be: such a
// record would only stop the pair from sharing the rest.
func validDrainRecord(r DrainRecord) error {
	a := r.Server.Addr()
	switch {
	case r.Service == "":
		return errors.New("no service")
	case !a.IsValid() || a.Zone() != "" || a.Is4In6():
		return fmt.Errorf("server %v is not a real server's address", r.Server)
	case r.At.IsZero():
		return fmt.Errorf("%s %v: no time", r.Service, r.Server)
	}
	return nil
}

func (d *Director) saveDrains(recs []DrainRecord) {
	if d.drainPath == "" {
		return
	}
	b, err := json.Marshal(recs)
	if err == nil {
		if err = os.MkdirAll(filepath.Dir(d.drainPath), 0o700); err == nil {
			err = rootfile.WriteFile(d.drainPath, b, 0o600)
		}
	}
	if err != nil {
		d.log.Error("cannot save the drains; they hold until directord stops", "path", d.drainPath, "err", err)
	}
}
