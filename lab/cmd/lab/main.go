// Command lab runs the project's code inside a VM booted from Debian's
// stock kernel, which has the IPVS the build machines' kernel lacks.
//
//	lab test [-run RE] [PACKAGES]   run the lab-tagged tests in one boot
//	lab demo [-deb FILE]            run the product demo (with the package's programs)
//	lab exec BINARY [ARGS]          run a static binary in the guest
//	lab kernel                      fetch and verify the kernel only
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/directorlb/director/lab"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "lab: %v\n", err)
		var u usageError
		if errors.As(err, &u) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

type usageError struct{ error }

const usage = `usage: lab COMMAND [flags]
  test [-run RE] [-testflags F] [PACKAGES]
                              build the lab-tagged tests and run them in one VM boot
  demo [-deb FILE]            boot the VM and run the demo (-deb: with that package's programs)
  exec BINARY [ARGS...]       run a static binary in the VM
  kernel                      fetch, unpack and verify the kernel, print its paths
common flags: -accel auto|tcg|kvm  -cache DIR  -timeout D  -memory MiB  -cpus N`

type common struct {
	accel   string
	cache   string
	timeout time.Duration
	memory  int
	cpus    int
}

func (c *common) register(fs *flag.FlagSet, timeout time.Duration) {
	fs.StringVar(&c.accel, "accel", "auto", "qemu accelerator: auto (probe KVM once), tcg or kvm")
	fs.StringVar(&c.cache, "cache", defaultCache(), "kernel cache directory (outside the repository)")
	fs.DurationVar(&c.timeout, "timeout", timeout, "limit for the whole VM run")
	fs.IntVar(&c.memory, "memory", 2048, "guest memory in MiB")
	fs.IntVar(&c.cpus, "cpus", 2, "guest CPUs")
}

func defaultCache() string {
	if d := os.Getenv("DIRECTOR_LAB_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "director-lab")
	}
	return "/var/cache/director-lab"
}

func logf(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{errors.New(usage)}
	}
	switch args[0] {
	case "test":
		return cmdTest(ctx, args[1:])
	case "demo":
		return cmdDemo(ctx, args[1:])
	case "exec":
		return cmdExec(ctx, args[1:])
	case "kernel":
		return cmdKernel(ctx, args[1:])
	case "-h", "-help", "--help", "help":
		fmt.Println(usage)
		return nil
	}
	return usageError{fmt.Errorf("unknown command %q\n%s", args[0], usage)}
}

// session is what every command needs: a module root, a build directory
// and a runner.
type session struct {
	root    string
	build   *lab.Builder
	runner  *lab.Runner
	cleanup func()
}

func newSession(ctx context.Context, c *common) (*session, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(c.cache, 0o755); err != nil {
		return nil, fmt.Errorf("kernel cache: %w", err)
	}
	out, err := os.MkdirTemp("", "director-lab-build-")
	if err != nil {
		return nil, err
	}
	b := &lab.Builder{Dir: root, Out: out}
	init, err := b.Binary(ctx, "./lab/cmd/labinit")
	if err != nil {
		os.RemoveAll(out)
		return nil, err
	}
	r := &lab.Runner{
		Cache:   &lab.KernelCache{Dir: c.cache, Source: &lab.Apt{Logf: logf}, Logf: logf},
		Init:    init,
		Accel:   c.accel,
		Memory:  c.memory,
		CPUs:    c.cpus,
		Timeout: c.timeout,
		Output:  os.Stdout,
		Logf:    logf,
	}
	return &session{root: root, build: b, runner: r, cleanup: func() { os.RemoveAll(out) }}, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w (is Go installed?)", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run lab from inside the director module")
	}
	return filepath.Dir(mod), nil
}

// productBinaries builds every main package under ./cmd into /bin.
func (s *session) productBinaries(ctx context.Context) ([]lab.File, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "cmd"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	var files []lab.File
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if m, _ := filepath.Glob(filepath.Join(s.root, "cmd", e.Name(), "*.go")); len(m) == 0 {
			continue
		}
		bin, err := s.build.Binary(ctx, "./cmd/"+e.Name())
		if err != nil {
			return nil, err
		}
		files = append(files, lab.File{Src: bin, Dst: "/bin/" + e.Name()})
	}
	return files, nil
}

func cmdTest(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("lab test", flag.ContinueOnError)
	var c common
	// The limits are for a hang, not for speed: the suite takes 6-8 minutes
	// here, and over 15 when the host's CPUs are busy elsewhere (emulation
	// slows with them), which must still pass.
	c.register(fs, 45*time.Minute)
	runRE := fs.String("run", "", "run only tests matching this regexp (as go test -run)")
	benchRE := fs.String("bench", "", "run benchmarks matching this regexp (as go test -bench)")
	benchtime := fs.String("benchtime", "", "as go test -benchtime")
	testFlags := fs.String("testflags", "", "more flags for the test binaries, separated by spaces (e.g. '-failover.seed 42')")
	// BIRD is the real router the bgp lab tests peer with; keepalived is the
	// daemon whose kernel table the import test compares with directord's.
	hostTools := fs.String("host-tools", "ipvsadm,bird,birdc,keepalived", "comma-separated host programs to copy into the guest with their libraries")
	// ldirectord is Perl: the import test runs it from the host's trees.
	hostTrees := fs.String("host-trees", strings.Join(lab.LdirectordTrees, ","), "comma-separated host files or directories to copy into the guest at the same paths (lab.HostTree)")
	testTimeout := fs.Duration("test.timeout", 40*time.Minute, "per test binary timeout inside the guest")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	patterns := fs.Args()
	if len(patterns) == 0 {
		patterns = []string{"./..."}
	}
	s, err := newSession(ctx, &c)
	if err != nil {
		return err
	}
	defer s.cleanup()
	start := time.Now()
	pkgs, err := s.build.LabPackages(ctx, patterns...)
	if err != nil {
		return err
	}
	if len(pkgs) == 0 {
		return fmt.Errorf("no lab tests in %s: nothing would prove the code against the real kernel", strings.Join(patterns, " "))
	}
	payload := lab.Payload{}
	bins, err := s.productBinaries(ctx)
	if err != nil {
		return err
	}
	payload.Files = append(payload.Files, bins...)
	for _, tool := range strings.Split(*hostTools, ",") {
		if tool = strings.TrimSpace(tool); tool == "" {
			continue
		}
		files, err := lab.HostBinary(ctx, tool)
		if err != nil {
			return err
		}
		payload.Files = append(payload.Files, files...)
	}
	for _, root := range strings.Split(*hostTrees, ",") {
		if root = strings.TrimSpace(root); root == "" {
			continue
		}
		files, err := lab.HostTree(ctx, root)
		if err != nil {
			return err
		}
		payload.Files = append(payload.Files, files...)
	}
	sharedDone := false
	for _, p := range pkgs {
		bin, err := s.build.TestBinary(ctx, p)
		if err != nil {
			return err
		}
		guestDir := path.Join("/src", p.ImportPath)
		payload.Files = append(payload.Files, lab.File{Src: bin, Dst: path.Join("/bin", filepath.Base(bin))})
		td, err := testdataFiles(p.Dir, guestDir)
		if err != nil {
			return err
		}
		payload.Files = append(payload.Files, td...)
		// The import corpus lives beside the clone (../shared), never in it;
		// the import lab tests read it by the same relative path.
		if !sharedDone {
			rel, err := filepath.Rel(s.build.Dir, p.Dir)
			if err != nil {
				return err
			}
			guestRoot := strings.TrimSuffix(guestDir, "/"+filepath.ToSlash(rel))
			sf, err := sharedFiles(filepath.Join(s.build.Dir, "..", "shared"), path.Join(path.Dir(guestRoot), "shared"))
			if err != nil {
				return err
			}
			payload.Files = append(payload.Files, sf...)
			sharedDone = true
		}
		argv := []string{path.Join("/bin", filepath.Base(bin)), "-test.v", "-test.timeout", testTimeout.String()}
		if *runRE != "" {
			argv = append(argv, "-test.run", *runRE)
		}
		if *benchRE != "" {
			argv = append(argv, "-test.bench", *benchRE, "-test.benchmem")
		}
		if *benchtime != "" {
			argv = append(argv, "-test.benchtime", *benchtime)
		}
		argv = append(argv, strings.Fields(*testFlags)...)
		payload.Commands = append(payload.Commands, lab.Command{Name: p.ImportPath, Argv: argv, Dir: guestDir})
	}
	logf("lab: built %d test package(s) in %.1fs", len(pkgs), time.Since(start).Seconds())
	tally := &testTally{w: os.Stdout}
	s.runner.Output = tally
	failed := 0
	s.runner.OnExit = func(es lab.ExitStatus) {
		verdict := "ok"
		if es.Status != 0 {
			verdict, failed = fmt.Sprintf("FAIL (exit %d)", es.Status), failed+1
		}
		logf("lab: %-50s %s in %.1fs", payload.Commands[es.Index].Name, verdict, es.Duration.Seconds())
	}
	res, err := s.runner.Run(ctx, payload)
	report(res)
	// The closing line CI reads: every top-level test the guest ran.
	fmt.Printf("lab: %d passed, %d failed\n", tally.passed, tally.failed)
	for _, name := range tally.failures {
		fmt.Printf("lab: FAILED %s\n", name)
	}
	if err != nil {
		return err
	}
	if len(res.Commands) != len(payload.Commands) {
		return fmt.Errorf("only %d of %d test packages reported", len(res.Commands), len(payload.Commands))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d lab test package(s) failed", failed, len(pkgs))
	}
	return nil
}

func report(res *lab.Result) {
	if res == nil {
		return
	}
	var ran time.Duration
	for _, c := range res.Commands {
		ran += c.Duration
	}
	logf("lab: VM run: boot to init %.2fs, commands %.2fs, total %.2fs (overhead %.2fs)",
		res.Boot.Seconds(), ran.Seconds(), res.Total.Seconds(), (res.Total - ran).Seconds())
}

// testdataFiles maps a package's testdata directory into the guest, so
// tests that read fixtures run there unchanged.
func testdataFiles(pkgDir, guestDir string) ([]lab.File, error) {
	var files []lab.File
	root := filepath.Join(pkgDir, "testdata")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return fs.SkipDir
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(pkgDir, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		files = append(files, lab.File{Src: p, Dst: path.Join(guestDir, filepath.ToSlash(rel)), Mode: info.Mode().Perm()})
		return nil
	})
	return files, err
}

// sharedFiles copies the import corpus (hostDir/import-corpus) to
// guestDir/import-corpus, if the host has it.
func sharedFiles(hostDir, guestDir string) ([]lab.File, error) {
	var files []lab.File
	root := filepath.Join(hostDir, "import-corpus")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == root {
			return fs.SkipDir
		}
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		rel, _ := filepath.Rel(hostDir, p)
		files = append(files, lab.File{Src: p, Dst: path.Join(guestDir, filepath.ToSlash(rel)), Mode: 0o644})
		return nil
	})
	return files, err
}

func cmdDemo(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("lab demo", flag.ContinueOnError)
	var c common
	c.register(fs, 5*time.Minute)
	deb := fs.String("deb", "", "run the programs of this director .deb (make demo passes the one make deb built) instead of building ./cmd")
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	s, err := newSession(ctx, &c)
	if err != nil {
		return err
	}
	defer s.cleanup()
	demo, err := s.build.Binary(ctx, "./lab/cmd/demo")
	if err != nil {
		return err
	}
	var files []lab.File
	if *deb != "" {
		files, err = s.debBinaries(ctx, *deb)
	} else {
		files, err = s.productBinaries(ctx)
	}
	if err != nil {
		return err
	}
	files = append(files, lab.File{Src: demo, Dst: "/bin/demo"})
	// BIRD is the router of the demo's third act.
	for _, tool := range []string{"ipvsadm", "bird", "birdc"} {
		f, err := lab.HostBinary(ctx, tool)
		if err != nil {
			return err
		}
		files = append(files, f...)
	}
	return runOne(ctx, s, files, lab.Command{Name: "demo", Argv: []string{"/bin/demo"}})
}

func cmdExec(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("lab exec", flag.ContinueOnError)
	var c common
	c.register(fs, 10*time.Minute)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if fs.NArg() == 0 {
		return usageError{errors.New("lab exec: name a static binary to run")}
	}
	s, err := newSession(ctx, &c)
	if err != nil {
		return err
	}
	defer s.cleanup()
	bin := fs.Arg(0)
	dst := "/bin/" + filepath.Base(bin)
	argv := append([]string{dst}, fs.Args()[1:]...)
	return runOne(ctx, s, []lab.File{{Src: bin, Dst: dst}}, lab.Command{Name: filepath.Base(bin), Argv: argv})
}

func runOne(ctx context.Context, s *session, files []lab.File, c lab.Command) error {
	res, err := s.runner.Run(ctx, lab.Payload{Files: files, Commands: []lab.Command{c}})
	report(res)
	if err != nil {
		return err
	}
	if len(res.Commands) != 1 {
		return errors.New("the guest did not report the command's exit")
	}
	if st := res.Commands[0].Status; st != 0 {
		return fmt.Errorf("%s exited with status %d in the guest", c.Name, st)
	}
	return nil
}

func cmdKernel(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("lab kernel", flag.ContinueOnError)
	var c common
	c.register(fs, 0)
	if err := fs.Parse(args); err != nil {
		return usageError{err}
	}
	if err := os.MkdirAll(c.cache, 0o755); err != nil {
		return err
	}
	kc := &lab.KernelCache{Dir: c.cache, Source: &lab.Apt{Logf: logf}, Logf: logf}
	start := time.Now()
	k, err := kc.Kernel(ctx, lab.DefaultModules)
	if err != nil {
		return err
	}
	fmt.Printf("package %s\nrelease %s\nvmlinuz %s\nmodules %d (in load order)\n", k.Package, k.Version, k.Vmlinuz, len(k.Modules))
	for _, m := range k.Modules {
		fmt.Printf("  %s\n", filepath.Base(m))
	}
	logf("lab: kernel ready in %.2fs", time.Since(start).Seconds())
	return nil
}

// testTally passes the guest's console through and counts the top-level
// results go test prints ("--- PASS: TestX", "--- FAIL: TestX"). It keeps
// the names of the failures, because CI shows only the tail of the output
// and the closing lines must say which tests failed.
type testTally struct {
	w              io.Writer
	passed, failed int
	failures       []string
	partial        string
}

func (t *testTally) Write(b []byte) (int, error) {
	lines := strings.Split(t.partial+string(b), "\n")
	t.partial = lines[len(lines)-1]
	for _, line := range lines[:len(lines)-1] {
		t.count(strings.TrimRight(line, "\r"))
	}
	return t.w.Write(b)
}

func (t *testTally) count(line string) {
	switch {
	case strings.HasPrefix(line, "--- PASS: "):
		t.passed++
	case strings.HasPrefix(line, "--- FAIL: "):
		t.failed++
		name, _, _ := strings.Cut(strings.TrimPrefix(line, "--- FAIL: "), " ")
		t.failures = append(t.failures, name)
	}
}
