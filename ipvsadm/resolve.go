package ipvsadm

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cloudflare/ipvs"
)

// Resolver gives the names `ipvsadm -L` shows without -n.
type Resolver interface {
	// LookupAddr is the host name of addr, as gethostbyaddr(3) gives
	// it (no trailing dot). On an error ipvsadm shows the address.
	LookupAddr(addr netip.Addr) (string, error)
	// ServiceName is the services(5) name of port for the protocol, as
	// getservbyport(3) gives it; ok is false when there is none, and
	// ipvsadm then shows the number. proto is TCP, UDP or SCTP.
	ServiceName(port uint16, proto ipvs.Protocol) (name string, ok bool)
}

// NameLookup turns the names a restore file may hold into numbers, as
// ipvsadm does when it reads `ipvsadm -S` output saved without -n.
type NameLookup interface {
	// LookupHost is the IPv4 address of a host name, as gethostbyname(3)
	// gives it: ipvsadm accepts only IPv4 results.
	LookupHost(name string) (netip.Addr, error)
	// ServicePort is the port of a services(5) name or alias for the
	// protocol, as getservbyname(3) gives it.
	ServicePort(name string, proto ipvs.Protocol) (port uint16, ok bool)
}

// SystemResolver resolves as ipvsadm does through the C library: host
// names through Go's resolver (/etc/hosts, then DNS), service names from
// the services(5) file. It implements Resolver and NameLookup. Its zero
// value is ready to use; it loads the services file once, on first use.
type SystemResolver struct {
	// ServicesFile is the services(5) database; "" is /etc/services.
	ServicesFile string
	// Timeout bounds each host lookup; 0 is 5 seconds. A listing of many
	// addresses with an unreachable DNS server is slow with ipvsadm too.
	Timeout time.Duration

	once     sync.Once
	services *servicesDB
}

// NewSystemResolver returns a SystemResolver with the defaults.
func NewSystemResolver() *SystemResolver { return &SystemResolver{} }

func (r *SystemResolver) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return 5 * time.Second
}

// LookupAddr implements Resolver.
func (r *SystemResolver) LookupAddr(addr netip.Addr) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout())
	defer cancel()
	names, err := net.DefaultResolver.LookupAddr(ctx, addr.String())
	if err != nil {
		return "", fmt.Errorf("reverse lookup of %s: %w", addr, err)
	}
	if len(names) == 0 || names[0] == "" {
		return "", fmt.Errorf("reverse lookup of %s: no name", addr)
	}
	return strings.TrimSuffix(names[0], "."), nil
}

// LookupHost implements NameLookup.
func (r *SystemResolver) LookupHost(name string) (netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout())
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip4", name)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("look up host %s: %w", name, err)
	}
	if len(addrs) == 0 {
		return netip.Addr{}, fmt.Errorf("look up host %s: no IPv4 address", name)
	}
	return addrs[0].Unmap(), nil
}

func (r *SystemResolver) db() *servicesDB {
	r.once.Do(func() {
		path := r.ServicesFile
		if path == "" {
			path = "/etc/services"
		}
		f, err := os.Open(path)
		if err != nil {
			// No services file: every port stays a number, as with the
			// C library.
			r.services = &servicesDB{}
			return
		}
		defer f.Close()
		r.services = parseServices(f)
	})
	return r.services
}

// ServiceName implements Resolver.
func (r *SystemResolver) ServiceName(port uint16, proto ipvs.Protocol) (string, bool) {
	return r.db().name(port, proto)
}

// ServicePort implements NameLookup.
func (r *SystemResolver) ServicePort(name string, proto ipvs.Protocol) (uint16, bool) {
	return r.db().port(name, proto)
}

type serviceEntry struct {
	names []string // the official name, then the aliases
	port  uint16
	proto string
}

// servicesDB is a parsed services(5) file, kept in file order: the C
// library answers with the first matching line.
type servicesDB struct{ entries []serviceEntry }

// parseServices reads "name port/protocol [aliases...] [# comment]"
// lines and skips anything else, as the C library does.
func parseServices(rd io.Reader) *servicesDB {
	db := &servicesDB{}
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		portStr, proto, ok := strings.Cut(f[1], "/")
		if !ok {
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			continue
		}
		db.entries = append(db.entries, serviceEntry{names: append([]string{f[0]}, f[2:]...), port: uint16(port), proto: proto})
	}
	return db
}

func protoName(p ipvs.Protocol) (string, bool) {
	switch p {
	case ipvs.TCP:
		return "tcp", true
	case ipvs.UDP:
		return "udp", true
	case ipvs.SCTP:
		return "sctp", true
	}
	return "", false
}

func (db *servicesDB) name(port uint16, proto ipvs.Protocol) (string, bool) {
	pn, ok := protoName(proto)
	if !ok {
		return "", false
	}
	for _, e := range db.entries {
		if e.port == port && e.proto == pn {
			return e.names[0], true
		}
	}
	return "", false
}

func (db *servicesDB) port(name string, proto ipvs.Protocol) (uint16, bool) {
	pn, ok := protoName(proto)
	if !ok {
		return 0, false
	}
	for _, e := range db.entries {
		if e.proto != pn {
			continue
		}
		for _, n := range e.names {
			if n == name {
				return e.port, true
			}
		}
	}
	return 0, false
}

// nameCache asks a Resolver once per address and port within one
// listing: ipvsadm asks again for every line, but the answers are the
// same and lookups can be slow.
type hostKey struct {
	af ipvs.AddressFamily
	a  netip.Addr
}

type nameCache struct {
	r     Resolver
	hosts map[hostKey]string
	ports map[[2]uint16]string
}

func newNameCache(r Resolver) *nameCache {
	return &nameCache{r: r, hosts: map[hostKey]string{}, ports: map[[2]uint16]string{}}
}

// host is addr_to_anyname: the host name, or the address when the
// lookup fails.
func (c *nameCache) host(af ipvs.AddressFamily, a netip.Addr) string {
	key := hostKey{af, a}
	if s, ok := c.hosts[key]; ok {
		return s
	}
	s := addrString(af, a)
	if c.r != nil && a.IsValid() {
		if name, err := c.r.LookupAddr(a); err == nil && name != "" {
			s = name
		}
	}
	c.hosts[key] = s
	return s
}

// port is port_to_anyname: the service name for TCP, UDP and SCTP, or
// the number.
func (c *nameCache) port(port uint16, proto ipvs.Protocol) string {
	key := [2]uint16{port, uint16(proto)}
	if s, ok := c.ports[key]; ok {
		return s
	}
	s := strconv.Itoa(int(port))
	if _, known := protoName(proto); known && c.r != nil {
		if name, ok := c.r.ServiceName(port, proto); ok && name != "" {
			s = name
		}
	}
	c.ports[key] = s
	return s
}
