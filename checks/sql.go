package checks

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// SQLOptions are what the mysql and postgres checks send. The password
// comes from a file or an environment variable, read once per load by
// LoadPassword (SpecsFor calls it) into Password: a probe never touches a
// file, so a FIFO or a huge file planted there cannot hang or bloat it,
// and a rotated secret is picked up by a reload. It never appears in
// errors, logs or status.
type SQLOptions struct {
	User         string
	PasswordFile string
	PasswordEnv  string
	Password     Secret // loaded from PasswordFile or PasswordEnv
	Database     string
	Query        string // default "SELECT 1"
	// Expect, if set, must equal the first column of the first row,
	// compared as text.
	Expect string
}

// ErrSQLResult is a query answer that is not what the check expects.
var ErrSQLResult = errors.New("unexpected query result")

func (o SQLOptions) password() (string, error) {
	switch {
	case o.Password.IsSet():
		return o.Password.Value(), nil
	case o.PasswordFile != "":
		// The path is not secret; the content is never shown.
		return "", fmt.Errorf("password file %s was not loaded", o.PasswordFile)
	case o.PasswordEnv != "":
		return "", fmt.Errorf("password environment variable %s is not set", o.PasswordEnv)
	}
	return "", nil
}

func (o SQLOptions) query() string {
	if o.Query == "" {
		return "SELECT 1"
	}
	return o.Query
}

func (o SQLOptions) judge(ctx context.Context, start time.Time, v any) Result {
	if o.Expect != "" {
		if got := fmt.Sprint(v); got != o.Expect {
			return fail(ctx, start, fmt.Errorf("%w: first value %q, want %q", ErrSQLResult, truncate(got, 64), o.Expect))
		}
	}
	return ok(start)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// scrub removes the password from a driver's error text, in case a driver
// ever echoes its connection settings.
func scrub(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "********"))
}

// MySQL checks a MySQL or MariaDB server with one connection per probe.
type MySQL struct{ SQLOptions }

// Probe implements Prober.
func (m MySQL) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	pw, err := m.password()
	if err != nil {
		return fail(ctx, start, err)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd, cfg.DBName = m.User, pw, m.Database
	cfg.Net, cfg.Addr = "tcp", target.String()
	if dl, ok := ctx.Deadline(); ok {
		cfg.Timeout = time.Until(dl)
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return fail(ctx, start, fmt.Errorf("mysql: %w", scrub(err, pw)))
	}
	db := sql.OpenDB(conn)
	defer db.Close()
	db.SetMaxIdleConns(0)
	var v any
	if err := db.QueryRowContext(ctx, m.query()).Scan(&v); err != nil {
		return fail(ctx, start, fmt.Errorf("mysql %s: %w", target, scrub(err, pw)))
	}
	if b, isBytes := v.([]byte); isBytes {
		v = string(b)
	}
	return m.judge(ctx, start, v)
}

// Postgres checks a PostgreSQL server with one connection per probe.
type Postgres struct{ SQLOptions }

// Probe implements Prober.
func (p Postgres) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	pw, err := p.password()
	if err != nil {
		return fail(ctx, start, err)
	}
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return fail(ctx, start, fmt.Errorf("postgres: %w", err))
	}
	cfg.Host, cfg.Port = target.Addr().String(), target.Port()
	cfg.User, cfg.Password, cfg.Database = p.User, pw, p.Database
	cfg.TLSConfig, cfg.Fallbacks = nil, nil
	if cfg.Database == "" {
		cfg.Database = p.User
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return fail(ctx, start, fmt.Errorf("postgres %s: %w", target, scrub(err, pw)))
	}
	defer conn.Close(context.Background())
	var v any
	if err := conn.QueryRow(ctx, p.query()).Scan(&v); err != nil {
		return fail(ctx, start, fmt.Errorf("postgres %s: %w", target, scrub(err, pw)))
	}
	return p.judge(ctx, start, v)
}
