package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
)

// TestRunRefusesBGP: directord has no BGP speaker yet, so a file with a
// bgp block, valid as check-config judges it, is refused at the block,
// before the control socket or the kernel is opened: started, it would
// serve VIPs nobody announces. A reload takes the same path (loadQuiet).
func TestRunRefusesBGP(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "director.yaml")
	socket := filepath.Join(dir, "ctl", "director.sock")
	cfg := fmt.Sprintf(`control: {socket: %s}
metrics: {listen: "127.0.0.1:%d"}
bgp:
  asn: 65001
  router_id: 10.0.1.2
  peers: [{address: 10.0.1.1, asn: 65000}]
services:
  - {name: web, vip: 192.0.2.10, port: 80, forward: dr, real_servers: [{address: 10.1.0.11}]}
`, socket, freePort(t))
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	opened := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			ConfigPath: cfgPath,
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			OpenKernel: func() (director.Kernel, error) {
				opened <- struct{}{}
				return newMemKernel(), nil
			},
		})
	}()
	select {
	case err := <-done:
		want := cfgPath + ":3:1: bgp: bgp mode is not implemented by this directord yet; check-config validates the block"
		var errs config.Errors
		if !errors.As(err, &errs) || err.Error() != want {
			t.Errorf("Run: %v\nwant config.Errors: %s", err, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("directord started with a bgp block")
	}
	select {
	case <-opened:
		t.Error("the kernel was opened before the bgp block was refused")
	default:
	}
	if _, err := os.Stat(socket); err == nil {
		t.Error("the control socket was opened before the bgp block was refused")
	}

	// A reload, and its dry run, load through loadQuiet too.
	if _, _, err := loadQuiet(cfgPath); err == nil || err.Error() != cfgPath+":3:1: bgp: bgp mode is not implemented by this directord yet; check-config validates the block" {
		t.Errorf("loadQuiet: %v", err)
	}
}
