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
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/director"
)

// TestStartRefusesFIFOPasswordFile: a FIFO planted as a check's
// password_file is refused when directord starts, promptly and with the
// path, instead of hanging the check (and later the stop) on it.
func TestStartRefusesFIFOPasswordFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("password files must be owned by root")
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "db.pw")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgPath := filepath.Join(dir, "director.yaml")
	cfg := fmt.Sprintf(`control: {socket: %s/ctl/director.sock}
metrics: {listen: "127.0.0.1:%d"}
services:
  - name: db
    vip: 192.0.2.10
    port: 5432
    check: {type: postgres, user: checker, password_file: %s}
    real_servers: [{address: 10.1.0.11}]
`, dir, freePort(t), fifo)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Options{
			ConfigPath: cfgPath,
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			OpenKernel: func() (director.Kernel, error) { return newMemKernel(), nil },
		})
	}()
	select {
	case err := <-done:
		var errs config.Errors
		if !errors.As(err, &errs) || !strings.Contains(err.Error(), fifo) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("Run: %v, want config.Errors naming %s as not a regular file", err, fifo)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("directord started (or hung) with a FIFO as password_file")
	}
}
