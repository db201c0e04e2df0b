package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudflare/ipvs"
	"github.com/directorlb/director/director"
)

// memKernel is an in-memory IPVS table for host tests of the daemon.
// Each open gets its own, so no lock is shared between the daemon's
// goroutines through the fake (that would hide their races).
type memKernel struct {
	mu    sync.Mutex
	svcs  []ipvs.Service
	dests map[int][]ipvs.Destination
}

func newMemKernel() *memKernel { return &memKernel{dests: map[int][]ipvs.Destination{}} }

func (k *memKernel) find(s ipvs.Service) int {
	for i, have := range k.svcs {
		if have.Address == s.Address && have.Port == s.Port && have.Protocol == s.Protocol && have.FWMark == s.FWMark {
			return i
		}
	}
	return -1
}

func (k *memKernel) Services() ([]ipvs.ServiceExtended, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]ipvs.ServiceExtended, len(k.svcs))
	for i, s := range k.svcs {
		out[i] = ipvs.ServiceExtended{Service: s}
	}
	return out, nil
}

func (k *memKernel) Destinations(s ipvs.Service) ([]ipvs.DestinationExtended, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := k.find(s)
	if i < 0 {
		return nil, fmt.Errorf("no such service")
	}
	var out []ipvs.DestinationExtended
	for _, d := range k.dests[i] {
		out = append(out, ipvs.DestinationExtended{Destination: d})
	}
	return out, nil
}

func (k *memKernel) CreateService(s ipvs.Service) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.svcs = append(k.svcs, s)
	return nil
}

func (k *memKernel) UpdateService(s ipvs.Service) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if i := k.find(s); i >= 0 {
		k.svcs[i] = s
	}
	return nil
}

func (k *memKernel) RemoveService(s ipvs.Service) error { return nil }

func (k *memKernel) CreateDestination(s ipvs.Service, d ipvs.Destination) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := k.find(s)
	k.dests[i] = append(k.dests[i], d)
	return nil
}

func (k *memKernel) UpdateDestination(s ipvs.Service, d ipvs.Destination) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := k.find(s)
	for j := range k.dests[i] {
		if k.dests[i][j].Address == d.Address && k.dests[i][j].Port == d.Port {
			k.dests[i][j] = d
		}
	}
	return nil
}

func (k *memKernel) RemoveDestination(ipvs.Service, ipvs.Destination) error { return nil }
func (k *memKernel) Config() (ipvs.Config, error)                           { return ipvs.Config{}, nil }
func (k *memKernel) SetConfig(ipvs.Config) error                            { return nil }

// freePort finds a loopback TCP port nobody listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// A scrape while directord starts a pair must never see the pair half
// made: the metrics endpoint serves from before the first reconcile, and
// the pair starts after it. Run under -race, as make test does.
func TestScrapeDuringPairStartUp(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the auth key file must be owned by root")
	}
	dir := t.TempDir()
	key := filepath.Join(dir, "authkey")
	if err := os.WriteFile(key, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	hbPort, mPort := freePort(t), freePort(t)
	cfgPath := filepath.Join(dir, "director.yaml")
	cfg := fmt.Sprintf(`node: lb1
control: {socket: %s/ctl/director.sock}
metrics: {listen: "127.0.0.1:%d"}
state_dir: %s/state
services:
  - name: web
    vip: 192.0.2.10
    port: 80
    check: {type: none}
    real_servers: [{address: 10.1.0.11}, {address: 10.1.0.12}]
failover:
  keepalive: 50ms
  deadtime: 200ms
  initdead: 200ms
  auth_key_file: %s
  port: %d
  links: [{interface: lo, peer: 127.0.0.2}]
`, dir, mPort, dir, key, hbPort)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			ConfigPath: cfgPath,
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			OpenKernel: func() (director.Kernel, error) { return newMemKernel(), nil },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("directord: %v", err)
		}
	}()

	// Scrape without pause from before the endpoint is up until the
	// pair reports a role, and for a while after.
	base := fmt.Sprintf("http://127.0.0.1:%d", mPort)
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(20 * time.Second)
	scrapes, sawRole := 0, ""
	for time.Now().Before(deadline) {
		for _, path := range []string{"/metrics", "/healthz"} {
			resp, err := client.Get(base + path)
			if err != nil {
				if errors.Is(err, syscall.ECONNREFUSED) {
					continue // not serving yet
				}
				t.Fatalf("GET %s: %v", path, err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("GET %s: reading the body: %v", path, err)
			}
			if path == "/metrics" {
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("GET /metrics: %s\n%s", resp.Status, body)
				}
				scrapes++
				for _, role := range []string{"init", "standby", "active", "fault"} {
					if strings.Contains(string(body), `director_failover_role{role="`+role+`"} 1`) {
						sawRole = role
					}
				}
			}
		}
		if sawRole != "" && scrapes > 20 {
			break
		}
	}
	if sawRole == "" {
		t.Fatalf("no scrape in %d showed a failover role", scrapes)
	}
	t.Logf("%d scrapes during start-up; last role %s", scrapes, sawRole)
}
