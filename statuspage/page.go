// Package statuspage serves directord's status page: a read-only HTML
// page on the metrics listener that shows at a glance what `directorctl
// status` and `directorctl list --stats --rate` show (the node and its
// role, each service's real servers with their health, weights,
// connections and rates, the pair's links or the BGP peers) and the last
// state changes.
//
// The page is made from the same control.Status that answers `directorctl
// status` and from the kernel's counters, read when it is asked for: it
// keeps no state of its own but the ring of recent events, which the
// parts that own the state fill (see Events). It is a plain HTML document
// with inline CSS and no script, that refreshes itself, reads in a
// terminal browser, and is written through html/template, so everything
// it prints is escaped. It shows nothing secret: control.Status carries
// no key, password or key file path, and the config is not given to it.
package statuspage

import (
	"bytes"
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
)

//go:embed page.html.tmpl
var files embed.FS

var page = template.Must(template.New("page.html.tmpl").Funcs(template.FuncMap{
	"ago":   ago,
	"ms":    func(ms int64) string { return ago(time.Duration(ms) * time.Millisecond) },
	"stamp": stamp,
	"rate":  rate,
	"yesno": func(b bool) string { return map[bool]string{true: "yes", false: "no"}[b] },
}).ParseFS(files, "page.html.tmpl"))

// Kernel is the part of IPVS the page reads for connections and rates
// (*ipvsdump.Client; directord gives it the metrics' own handle).
type Kernel interface {
	Services() ([]ipvs.ServiceExtended, error)
	Destinations(ipvs.Service) ([]ipvs.DestinationExtended, error)
}

// Source is what the page is made from.
type Source struct {
	// Status is what `directorctl status` answers.
	Status func(ctx context.Context) (*control.Status, error)
	// Kernel gives the connections and rates; nil leaves them out.
	Kernel Kernel
	// Events are the recent state changes; nil leaves them out.
	Events *Events
	// Refresh is how often the page reloads itself (0: DefaultRefresh).
	Refresh time.Duration
	Log     *slog.Logger
	Now     func() time.Time // nil: time.Now
}

// DefaultRefresh is the page's reload period: quick enough to watch a
// failover, slow enough that an open tab costs directord nothing.
const DefaultRefresh = 5 * time.Second

// statusTimeout bounds how long a page waits for the status: the loops
// that answer it may be busy (a large reconcile), and the page must then
// say so rather than hang.
const statusTimeout = 5 * time.Second

// Handler serves the page.
func Handler(src Source) http.Handler {
	if src.Log == nil {
		src.Log = slog.Default()
	}
	if src.Now == nil {
		src.Now = time.Now
	}
	if src.Refresh <= 0 {
		src.Refresh = DefaultRefresh
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), statusTimeout)
		defer cancel()
		v := Build(ctx, src)
		var buf bytes.Buffer
		if err := Render(&buf, v); err != nil {
			src.Log.Error("status page", "err", err)
			http.Error(w, "status page: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		// The page has no script and loads nothing: a browser is told
		// to run none and load nothing, whatever a name may contain.
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
		if v.Error != "" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_, _ = w.Write(buf.Bytes())
	})
}

// Render writes the page for v.
func Render(w *bytes.Buffer, v *View) error {
	return page.Execute(w, v)
}

// View is what one page shows.
type View struct {
	Now     time.Time
	Refresh int // seconds
	// Error is why the status could not be read; the page then says so
	// and shows the events alone.
	Error       string
	KernelError string
	Node        string
	Mode        string // "single director", "failover pair" or "bgp group"
	Role        string
	Status      *control.Status
	Services    []Service
	Events      []Event
	ShowEvents  bool
	HasCounters bool
}

// Service is one kernel service of a configured service.
type Service struct {
	director.ServiceStatus
	// Up real servers (healthy and not drained), of Total (the sorry
	// server left out).
	Up, Total int
	Counters  *Counters
	Servers   []Server
}

// Server is one real server (or the sorry server).
type Server struct {
	director.ServerStatus
	// State is what the page says of it: up, down, drained, unchecked
	// (no check covers it), or sorry.
	State    string
	Counters *Counters
}

// Counters are the kernel's connections and rates for a service or a
// real server, as `ipvsadm -L -n --stats --rate` shows them.
type Counters struct {
	Active, Inactive      uint32
	Conns                 uint64 // connections since the service was added
	CPS, InPPS, OutPPS    uint64
	InBytesPS, OutBytesPS uint64
	InBytes, OutBytes     uint64
	InPackets, OutPackets uint64
	hasActive             bool
}

// HasActive: active and inactive connections are per real server; a
// service's are their sum.
func (c *Counters) HasActive() bool { return c.hasActive }

// Build reads the status and the kernel into a View.
func Build(ctx context.Context, src Source) *View {
	now := src.Now
	if now == nil {
		now = time.Now
	}
	v := &View{Now: now().UTC(), Refresh: int(cmp.Or(src.Refresh, DefaultRefresh).Round(time.Second) / time.Second)}
	if src.Events != nil {
		v.ShowEvents, v.Events = true, src.Events.Recent()
	}
	st, err := src.Status(ctx)
	if err == nil && st == nil {
		err = errors.New("no status")
	}
	if err != nil {
		v.Error = err.Error()
		return v
	}
	v.Status, v.Node, v.Role = st, st.Node, st.Role
	switch {
	case st.Failover != nil:
		v.Mode = "failover pair"
	case st.BGP != nil:
		v.Mode = "bgp group"
	default:
		v.Mode = "single director"
	}
	var kern map[string]kernelService
	if src.Kernel != nil {
		kern, err = readKernel(src.Kernel, st)
		if err != nil {
			v.KernelError = err.Error()
		} else {
			v.HasCounters = true
		}
	}
	for _, ss := range st.Services {
		s := Service{ServiceStatus: ss}
		ks, inKernel := kern[ss.Key]
		if inKernel {
			s.Counters = ks.svc
		}
		for _, rs := range ss.RealServers {
			srv := Server{ServerStatus: rs, State: state(rs)}
			if inKernel {
				srv.Counters = ks.dests[rs.Address]
			}
			if !rs.Sorry {
				s.Total++
			}
			if srv.State == "up" {
				s.Up++
			}
			s.Servers = append(s.Servers, srv)
		}
		v.Services = append(v.Services, s)
	}
	return v
}

func state(rs director.ServerStatus) string {
	switch {
	case rs.Sorry:
		return "sorry"
	case rs.Drained:
		return "drained"
	case rs.Health == nil:
		return "unchecked"
	case rs.Health.Healthy:
		return "up"
	}
	return "down"
}

type kernelService struct {
	svc   *Counters
	dests map[string]*Counters // by real server address:port
}

// readKernel reads the counters of the services st lists, from one dump
// of the kernel's services and one of each service's destinations.
func readKernel(k Kernel, st *control.Status) (map[string]kernelService, error) {
	svcs, err := k.Services()
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil // an empty table
	}
	if err != nil {
		return nil, fmt.Errorf("read the kernel's services: %w", err)
	}
	want := map[string]bool{}
	for _, s := range st.Services {
		if s.InKernel {
			want[s.Key] = true
		}
	}
	out := map[string]kernelService{}
	for _, s := range svcs {
		key := director.KeyOf(s.Service).String()
		if !want[key] {
			continue
		}
		ks := kernelService{svc: counters(stats(s.Stats, s.Stats64)), dests: map[string]*Counters{}}
		ds, err := k.Destinations(s.Service)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read the kernel's real servers of %s: %w", key, err)
		}
		ks.svc.hasActive = true
		for _, d := range ds {
			c := counters(stats(d.Stats, d.Stats64))
			c.Active, c.Inactive, c.hasActive = d.ActiveConnections, d.InactiveConnections, true
			ks.svc.Active += d.ActiveConnections
			ks.svc.Inactive += d.InactiveConnections
			ks.dests[director.DestKey{Addr: d.Address, Port: d.Port}.String()] = c
		}
		out[key] = ks
	}
	return out, nil
}

// stats prefers the kernel's 64-bit counters, which older kernels leave
// at zero (as metrics does).
func stats(s32, s64 ipvs.Stats) ipvs.Stats {
	if s64 != (ipvs.Stats{}) {
		return s64
	}
	return s32
}

func counters(s ipvs.Stats) *Counters {
	return &Counters{Conns: s.Connections, CPS: s.ConnectionRate, InPPS: s.IncomingPacketRate, OutPPS: s.OutgoingPacketRate,
		InBytesPS: s.IncomingByteRate, OutBytesPS: s.OutgoingByteRate, InBytes: s.IncomingBytes, OutBytes: s.OutgoingBytes,
		InPackets: s.IncomingPackets, OutPackets: s.OutgoingPackets}
}

// ago is a duration as a person reads it: 45s, 12m3s, 5h2m, 3d4h.
func ago(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	case d < 48*time.Hour:
		return d.Round(time.Minute).String()
	}
	days := d / (24 * time.Hour)
	return fmt.Sprintf("%dd%dh", days, (d-days*24*time.Hour)/time.Hour)
}

// stamp is a time in UTC, to the second; "-" for none.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// rate is a per-second count with a unit prefix: 950, 12.3K, 4.5M.
func rate(n uint64) string {
	f := float64(n)
	for _, u := range []string{"", "K", "M", "G", "T"} {
		if f < 1000 || u == "T" {
			if u == "" {
				return fmt.Sprintf("%d", n)
			}
			return fmt.Sprintf("%.1f%s", f, u)
		}
		f /= 1000
	}
	return ""
}
