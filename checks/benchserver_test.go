//go:build linux

package checks

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// benchServerEnv, set to "tcp:PORT" or "http:PORT" in the environment of
// the test binary, turns it into the targets of the engine benchmarks
// (see bench_test.go) instead of running tests: one listener on
// 0.0.0.0:PORT (0: any free port), which every 127/8 address reaches. It
// prints the port on stdout once listening and exits when stdin closes,
// so it never outlives the benchmark.
//
// It runs in a child process so that the benchmark's own CPU usage
// (getrusage RUSAGE_SELF) counts the engine and its probers only.
const benchServerEnv = "CHECKS_BENCH_SERVER"

// benchServerCPUEnv, if set, is the CPU the bench server pins itself to,
// away from the engine's (see BenchmarkEngineTCP20kOneCore).
const benchServerCPUEnv = "CHECKS_BENCH_SERVER_CPU"

func init() {
	// init, not TestMain: exec_test.go owns TestMain, and init runs first.
	if mode := os.Getenv(benchServerEnv); mode != "" {
		os.Exit(runBenchServer(mode))
	}
}

func runBenchServer(mode string) int {
	kind, port, _ := strings.Cut(mode, ":")
	if cpu := os.Getenv(benchServerCPUEnv); cpu != "" {
		n, err := strconv.Atoi(cpu)
		if err == nil {
			var set unix.CPUSet
			set.Set(n)
			err = pinThreads(set)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench server: pinning to CPU", cpu+":", err)
			return 2
		}
	}
	ln, err := net.Listen("tcp4", "0.0.0.0:"+port)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench server:", err)
		return 2
	}
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		os.Exit(0)
	}()
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	switch kind {
	case "tcp":
		// Accept and close at once: what a TCP check needs of a real server.
		for {
			c, err := ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return 0
				}
				fmt.Fprintln(os.Stderr, "bench server: accept:", err)
				time.Sleep(time.Millisecond)
				continue
			}
			c.Close()
		}
	case "http":
		srv := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Length", "3")
				_, _ = io.WriteString(w, "ok\n")
			}),
			ReadHeaderTimeout: 5 * time.Second,
		}
		srv.SetKeepAlivesEnabled(false)
		err := srv.Serve(ln)
		fmt.Fprintln(os.Stderr, "bench server:", err)
		return 2
	default:
		fmt.Fprintf(os.Stderr, "bench server: unknown kind %q\n", kind)
		return 2
	}
}

// benchServer is a running child serving the benchmark's targets.
type benchServer struct {
	cmd  *exec.Cmd
	port uint16
}

// startBenchServer starts a child serving kind ("tcp" or "http") and
// stops it when the benchmark ends.
// cpu >= 0 pins it to that CPU.
func startBenchServer(b *testing.B, kind string, cpu int) *benchServer {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$", "-test.bench=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"="+kind+":0")
	if cpu >= 0 {
		cmd.Env = append(cmd.Env, benchServerCPUEnv+"="+strconv.Itoa(cpu))
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("bench server: reading its port: %v", err)
	}
	port, err := strconv.ParseUint(strings.TrimSpace(line), 10, 16)
	if err != nil {
		b.Fatalf("bench server: bad port %q: %v", line, err)
	}
	return &benchServer{cmd: cmd, port: uint16(port)}
}

// cpu returns the child's CPU time so far (user+sys), from /proc.
func (s *benchServer) cpu() (time.Duration, error) {
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(s.cmd.Process.Pid) + "/stat")
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may
	// contain spaces: state is field 3, utime 14, stime 15.
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc stat %q", raw)
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("bad /proc stat %q", raw)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, err
	}
	const clkTck = 100 // USER_HZ on every Linux this runs on
	return time.Duration(utime+stime) * time.Second / clkTck, nil
}

// pinThreads sets the CPU affinity of every thread of this process. Go
// starts threads from threads it already has, and a new thread inherits
// its creator's affinity, so the whole process stays on set.
func pinThreads(set unix.CPUSet) error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("thread %d: %w", tid, err)
		}
	}
	return nil
}
