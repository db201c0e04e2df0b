package checks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// These tests run real database servers, private to the test, in a
// temporary directory: make test installs mariadb-server and postgresql
// (scripts/deps). A missing server fails the test, saying so.

const sqlSecret = "s3cret-Pa55"

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// daemonProc starts a server process and stops it at cleanup.
func daemonProc(t *testing.T, cmd *exec.Cmd, logPath string) {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
}

// retry runs f until it succeeds or the deadline passes: a database
// server's readiness shows only by accepting a connection.
func retry(t *testing.T, what string, within time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// startMariaDB runs mariadbd on a loopback port with a user "checker"
// whose password is sqlSecret.
func startMariaDB(t *testing.T) netip.AddrPort {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("starting a private MariaDB needs root")
	}
	for _, bin := range []string{"mariadb-install-db", "mariadbd"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Fatalf("%s not found: install mariadb-server (make deps does)", bin)
		}
	}
	dir := t.TempDir()
	data, sock, port := filepath.Join(dir, "data"), filepath.Join(dir, "sock"), freePort(t)
	if out, err := exec.Command("mariadb-install-db", "--no-defaults", "--datadir="+data, "--user=root",
		"--auth-root-authentication-method=socket", "--skip-test-db").CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	daemonProc(t, exec.Command("mariadbd", "--no-defaults", "--datadir="+data, "--socket="+sock,
		"--port="+strconv.Itoa(port), "--bind-address=127.0.0.1", "--user=root", "--skip-log-bin",
		"--innodb-buffer-pool-size=16M", "--pid-file="+filepath.Join(dir, "pid")), filepath.Join(dir, "log"))
	cfg := mysql.NewConfig()
	cfg.Net, cfg.Addr, cfg.User = "unix", sock, "root"
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		t.Fatal(err)
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	retry(t, "MariaDB did not start (see its log in "+dir+")", 60*time.Second, func() error { return db.Ping() })
	for _, q := range []string{
		"CREATE USER 'checker'@'127.0.0.1' IDENTIFIED BY '" + sqlSecret + "'",
		"CREATE DATABASE app",
		"CREATE TABLE app.role (name VARCHAR(16))",
		"INSERT INTO app.role VALUES ('primary')",
		"GRANT SELECT ON app.* TO 'checker'@'127.0.0.1'",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

// startPostgres runs PostgreSQL as the postgres user (it refuses root)
// with a role "checker" whose password is sqlSecret.
func startPostgres(t *testing.T) netip.AddrPort {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("starting a private PostgreSQL needs root")
	}
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	pg, err := user.Lookup("postgres")
	if len(bins) == 0 || err != nil {
		t.Fatal("PostgreSQL not found: install postgresql (make deps does)")
	}
	bin := bins[len(bins)-1]
	uid, _ := strconv.Atoi(pg.Uid)
	gid, _ := strconv.Atoi(pg.Gid)
	asPostgres := &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	dir, err := os.MkdirTemp("", "checks-pg-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	data, port := filepath.Join(dir, "data"), freePort(t)
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--auth-local=trust", "--auth-host=scram-sha-256")
	initdb.SysProcAttr = asPostgres
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	srv := exec.Command(filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=127.0.0.1", "-c", "fsync=off")
	srv.SysProcAttr = asPostgres
	daemonProc(t, srv, filepath.Join(os.TempDir(), filepath.Base(dir)+".log"))
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Host, cfg.Port, cfg.User, cfg.Database = dir, uint16(port), "postgres", "postgres"
	var admin *pgx.Conn
	retry(t, "PostgreSQL did not start", 60*time.Second, func() (err error) {
		admin, err = pgx.ConnectConfig(context.Background(), cfg)
		return err
	})
	defer admin.Close(context.Background())
	for _, q := range []string{
		"CREATE ROLE checker LOGIN PASSWORD '" + sqlSecret + "'",
		"CREATE DATABASE app OWNER checker",
	} {
		if _, err := admin.Exec(context.Background(), q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

// sqlCases are the same for both servers.
func sqlCases(t *testing.T, target netip.AddrPort, newProber func(SQLOptions) Prober, roleQuery string) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(sqlSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	badFile := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(badFile, []byte("wrong-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CHECKS_TEST_DB_PASSWORD", sqlSecret)
	closed := netip.AddrPortFrom(target.Addr(), uint16(freePort(t)))
	for _, tc := range []struct {
		name   string
		o      SQLOptions
		target netip.AddrPort
		ok     bool
	}{
		{"password from a file", SQLOptions{User: "checker", PasswordFile: pwFile, Database: "app"}, target, true},
		{"password from the environment", SQLOptions{User: "checker", PasswordEnv: "CHECKS_TEST_DB_PASSWORD", Database: "app"}, target, true},
		{"wrong password", SQLOptions{User: "checker", PasswordFile: badFile, Database: "app"}, target, false},
		{"missing password file", SQLOptions{User: "checker", PasswordFile: "/nonexistent/pw", Database: "app"}, target, false},
		{"expected value", SQLOptions{User: "checker", PasswordFile: pwFile, Database: "app", Query: roleQuery, Expect: "primary"}, target, true},
		{"unexpected value", SQLOptions{User: "checker", PasswordFile: pwFile, Database: "app", Query: roleQuery, Expect: "replica"}, target, false},
		{"bad query", SQLOptions{User: "checker", PasswordFile: pwFile, Database: "app", Query: "SELEKT"}, target, false},
		{"nothing listening", SQLOptions{User: "checker", PasswordFile: pwFile, Database: "app"}, closed, false},
	} {
		// The password is read at load, as LoadSpecs does; a file that
		// cannot be read fails there.
		o, res := tc.o, Result{}
		if err := o.LoadPassword(); err != nil {
			res.Err = err
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res = newProber(o).Probe(ctx, tc.target)
			cancel()
		}
		if res.OK != tc.ok {
			t.Errorf("%s: ok=%v err=%v", tc.name, res.OK, res.Err)
		}
		if res.Err != nil && strings.Contains(res.Err.Error(), sqlSecret) {
			t.Errorf("%s: the password is in the error: %v", tc.name, res.Err)
		}
		if tc.name == "unexpected value" && !errors.Is(res.Err, ErrSQLResult) {
			t.Errorf("unexpected value: %v", res.Err)
		}
	}
}

func TestMySQLProbe(t *testing.T) {
	target := startMariaDB(t)
	sqlCases(t, target, func(o SQLOptions) Prober { return MySQL{o} }, "SELECT name FROM role LIMIT 1")
}

func TestPostgresProbe(t *testing.T) {
	target := startPostgres(t)
	// The role table lives in the app database, created by checker.
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(sqlSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, _ := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=checker password=%s dbname=app sslmode=disable", target.Addr(), target.Port(), sqlSecret))
	conn, err := pgx.ConnectConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"CREATE TABLE role (name text)", "INSERT INTO role VALUES ('primary')"} {
		if _, err := conn.Exec(context.Background(), q); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close(context.Background())
	sqlCases(t, target, func(o SQLOptions) Prober { return Postgres{o} }, "SELECT name FROM role LIMIT 1")
}
