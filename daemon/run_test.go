package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directorlb/director/control"
	"github.com/directorlb/director/director"
)

// closingKernels opens memKernels that count their closes.
type closingKernels struct {
	mu             sync.Mutex
	opened, closed int
	failAt         int // the open (from 1) that fails; 0: none
}

type closingKernel struct {
	*memKernel
	ks *closingKernels
}

func (k closingKernel) Close() error {
	k.ks.mu.Lock()
	defer k.ks.mu.Unlock()
	k.ks.closed++
	return nil
}

func (ks *closingKernels) open() (director.Kernel, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.opened+1 == ks.failAt {
		return nil, errors.New("no netlink for you")
	}
	ks.opened++
	return closingKernel{newMemKernel(), ks}, nil
}

func (ks *closingKernels) counts() (opened, closed int) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.opened, ks.closed
}

// singleConfig writes a single director's config with the services
// given (YAML list items) and returns its path and control socket.
func singleConfig(t *testing.T, dir string, metricsPort int, services string) (path, socket string) {
	t.Helper()
	socket = filepath.Join(dir, "ctl", "director.sock")
	path = filepath.Join(dir, "director.yaml")
	cfg := fmt.Sprintf("control: {socket: %s}\nmetrics: {listen: \"127.0.0.1:%d\"}\nstate_dir: %s/state\nservices:\n%s", socket, metricsPort, dir, services)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, socket
}

const (
	webService = `  - name: web
    vip: 192.0.2.10
    port: 80
    check: {type: none}
    real_servers: [{address: 10.1.0.11}]
`
	apiService = `  - name: api
    vip: 192.0.2.11
    port: 80
    check: {type: none}
    real_servers: [{address: 10.1.0.12}]
`
)

// awaitServices polls directord's status until it reports n services.
func awaitServices(t *testing.T, socket string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var st control.Status
		err := control.Call(context.Background(), socket, control.Request{Cmd: control.CmdStatus}, &st)
		if err == nil && len(st.Services) == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed %d services: %+v, %v", n, st.Services, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestRunReloadsAndClosesItsHandles: a reload asked on Options.Reload
// puts the edited file in force, and every kernel handle Run opened is
// closed when it returns.
func TestRunReloadsAndClosesItsHandles(t *testing.T) {
	dir := t.TempDir()
	path, socket := singleConfig(t, dir, freePort(t), webService)
	var ks closingKernels
	reload := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			ConfigPath: path,
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			OpenKernel: ks.open,
			Reload:     reload,
		})
	}()
	awaitServices(t, socket, 1)
	singleConfig(t, dir, freePort(t), webService+apiService)
	reload <- struct{}{}
	awaitServices(t, socket, 2)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if opened, closed := ks.counts(); opened != 3 || closed != opened {
		t.Errorf("Run opened %d kernel handles and closed %d, want 3 and 3", opened, closed)
	}
	if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control socket is left behind: %v", err)
	}
}

// TestRunClosesHandlesWhenOpeningFails: when the kernel cannot be opened
// a third time (the metrics' handle), the two handles already open are
// closed, and so is the control socket.
func TestRunClosesHandlesWhenOpeningFails(t *testing.T) {
	dir := t.TempDir()
	path, socket := singleConfig(t, dir, freePort(t), webService)
	ks := closingKernels{failAt: 3}
	err := Run(context.Background(), Options{
		ConfigPath: path,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		OpenKernel: ks.open,
	})
	if !errors.Is(err, ErrNoIPVS) {
		t.Fatalf("Run: %v, want ErrNoIPVS", err)
	}
	if opened, closed := ks.counts(); opened != 2 || closed != 2 {
		t.Errorf("Run opened %d kernel handles and closed %d, want 2 and 2", opened, closed)
	}
	if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the control socket is left behind: %v", err)
	}
}

// TestSecondDaemonFailsOnTheSocketFirst: a directord whose control
// socket is in use fails on it without opening the kernel.
func TestSecondDaemonFailsOnTheSocketFirst(t *testing.T) {
	dir := t.TempDir()
	path, socket := singleConfig(t, dir, freePort(t), webService)
	l, err := control.Listen(socket)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var ks closingKernels
	err = Run(context.Background(), Options{
		ConfigPath: path,
		Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
		OpenKernel: ks.open,
	})
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("Run: %v, want the socket in use", err)
	}
	if opened, _ := ks.counts(); opened != 0 {
		t.Errorf("the second directord opened the kernel %d times", opened)
	}
}
