package checks

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/rootfile"
)

const (
	// maxPasswordFile bounds a password file: a password is a line.
	maxPasswordFile = 4096
	// maxCAFile bounds a CA bundle: the whole Mozilla bundle is ~220 KiB.
	maxCAFile = 4 << 20
)

// Secret is a password read when the configuration is loaded. Its value
// never shows: fmt and slog print ********, and its JSON (from which a
// probe's key is hashed) is a digest keyed by a random per-process key,
// so a changed password gives the probe a new key, and so a new prober,
// while no key, log line or status can be turned back into it.
type Secret struct {
	v   string
	set bool
}

// secretKey keys Secret digests; random, so they mean nothing outside
// this process. Written once at start-up, never after.
var secretKey = func() []byte {
	k := make([]byte, 32)
	rand.Read(k) // never fails (crypto/rand panics rather than return an error)
	return k
}()

// NewSecret wraps a password.
func NewSecret(v string) Secret { return Secret{v: v, set: true} }

// Value is the password itself, for the driver only.
func (s Secret) Value() string { return s.v }

// IsSet says whether a password was loaded (an empty one counts).
func (s Secret) IsSet() bool { return s.set }

func (s Secret) String() string       { return "********" }
func (s Secret) GoString() string     { return "checks.Secret{********}" }
func (s Secret) LogValue() slog.Value { return slog.StringValue("********") }

// MarshalJSON implements json.Marshaler with a keyed digest.
func (s Secret) MarshalJSON() ([]byte, error) {
	if !s.set {
		return []byte("null"), nil
	}
	m := hmac.New(sha256.New, secretKey)
	m.Write([]byte(s.v))
	return json.Marshal(hex.EncodeToString(m.Sum(nil)[:16]))
}

// PEM is a CA bundle read when the configuration is loaded. It is public,
// but megabytes of it in every probe's JSON would make keys slow to
// compute: its JSON is its SHA-256.
type PEM struct {
	b   []byte
	sum [32]byte
}

// NewPEM wraps a CA bundle's content.
func NewPEM(b []byte) *PEM { return &PEM{b: b, sum: sha256.Sum256(b)} }

// MarshalJSON implements json.Marshaler.
func (p *PEM) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(p.sum[:])) }

// LoadPassword reads the password into o.Password from PasswordFile
// (through rootfile.ReadSecret: a regular root-owned file with no group or
// other permission bits, never a FIFO) or PasswordEnv. An unset
// environment variable is not an error here: the probes fail saying so,
// as they always did.
func (o *SQLOptions) LoadPassword() error {
	switch {
	case o.PasswordFile != "":
		s, err := readPasswordFile(o.PasswordFile)
		if err != nil {
			return err
		}
		o.Password = s
	case o.PasswordEnv != "":
		if v, ok := os.LookupEnv(o.PasswordEnv); ok {
			o.Password = NewSecret(v)
		}
	}
	return nil
}

// readPasswordFile reads a password file as LoadPassword does; the ldap
// and radius checks read theirs with it too.
func readPasswordFile(path string) (Secret, error) {
	b, err := rootfile.ReadSecret(path, maxPasswordFile)
	if err != nil {
		return Secret{}, passwordFileError(path, err)
	}
	return NewSecret(strings.TrimRight(string(b), "\r\n")), nil
}

func passwordFileError(path string, err error) error {
	if os.IsNotExist(err) {
		return fmt.Errorf("password file %s does not exist; create it with `install -m 0600 -o root -g root /dev/null %s` and write the password in it: %w", path, path, err)
	}
	return fmt.Errorf("password file %w", err)
}

// LoadCA reads o.CAFile into o.CA through rootfile.ReadPublic: a regular
// file owned by root that group and others cannot write, never a FIFO.
func (o *HTTPOptions) LoadCA() error {
	if o.CAFile == "" || !o.TLS {
		return nil
	}
	b, err := rootfile.ReadPublic(o.CAFile, maxCAFile)
	if err != nil {
		return fmt.Errorf("ca file %w", err)
	}
	o.CA = NewPEM(b)
	return nil
}

// fileLoader reads each file a configuration names once, however many
// services name it.
type fileLoader struct {
	passwords map[string]Secret
	cas       map[string]*PEM
	failed    map[string]bool // reported once, at the first service naming it
}

// load fills p's password and CA bundle, or says what is wrong with
// service i's check.
func (l *fileLoader) load(i int, s *config.Service, p *ProbeSpec) *config.Error {
	bad := func(key string, err error) *config.Error {
		return &config.Error{Pos: s.Pos, Key: fmt.Sprintf("services[%d].check.%s", i, key), Msg: err.Error()}
	}
	if f := p.SQL.PasswordFile; f != "" && (p.Type == config.CheckMySQL || p.Type == config.CheckPostgres) {
		if v, ok := l.passwords[f]; ok {
			p.SQL.Password = v
		} else if !l.failed[f] {
			if err := p.SQL.LoadPassword(); err != nil {
				l.failed[f] = true
				return bad("password_file", err)
			}
			l.passwords[f] = p.SQL.Password
		}
	} else if p.SQL.PasswordEnv != "" {
		if err := p.SQL.LoadPassword(); err != nil {
			return bad("password_env", err)
		}
	}
	if f := p.HTTP.CAFile; f != "" && p.Type == config.CheckHTTPS {
		if v, ok := l.cas[f]; ok {
			p.HTTP.CA = v
		} else if !l.failed[f] {
			if err := p.HTTP.LoadCA(); err != nil {
				l.failed[f] = true
				return bad("ca_file", err)
			}
			l.cas[f] = p.HTTP.CA
		}
	}
	// ldap, radius: ldapradius.go
	if e := l.loadLDAPRADIUS(p, bad); e != nil {
		return e
	}
	// banner: native.go
	if e := l.loadBanner(p, bad); e != nil {
		return e
	}
	return nil
}
