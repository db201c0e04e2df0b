// Command directorctl is the ipvsadm-like CLI of director, and the control
// of a running directord. See `directorctl help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/directorlb/director/ctl"
	"github.com/directorlb/director/ipvsdump"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	env := &ctl.Env{
		Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		OpenKernel: func() (ctl.Kernel, error) { return ipvsdump.New() },
	}
	code := ctl.Main(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}
