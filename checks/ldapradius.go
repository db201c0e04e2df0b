package checks

import (
	"fmt"
	"os"
	"strings"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/rootfile"
)

// readSecretFile reads a RADIUS shared secret with the password file
// rules (rootfile.ReadSecret: regular, owned by root, no group or other
// permission bits, never a FIFO); a trailing newline is not part of it.
func readSecretFile(path string) (Secret, error) {
	b, err := rootfile.ReadSecret(path, maxPasswordFile)
	if err != nil {
		if os.IsNotExist(err) {
			return Secret{}, fmt.Errorf("secret file %s does not exist; create it with `install -m 0600 -o root -g root /dev/null %s` and write the shared secret in it: %w", path, path, err)
		}
		return Secret{}, fmt.Errorf("secret file %w", err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		// RFC 2865 section 3: the secret must not be empty, and with
		// none no answer could be told authentic.
		return Secret{}, fmt.Errorf("secret file %s is empty; write the RADIUS shared secret in it", path)
	}
	return NewSecret(s), nil
}

// loadLDAPRADIUS fills the password, secret and CA bundle of an ldap or
// radius spec, each file read once per load (see fileLoader).
func (l *fileLoader) loadLDAPRADIUS(p *ProbeSpec, bad func(key string, err error) *config.Error) *config.Error {
	once := func(key, path string, dst *Secret, read func(string) (Secret, error)) *config.Error {
		if path == "" {
			return nil
		}
		if v, ok := l.passwords[path]; ok {
			*dst = v
			return nil
		}
		if l.failed[path] {
			return nil
		}
		v, err := read(path)
		if err != nil {
			l.failed[path] = true
			return bad(key, err)
		}
		l.passwords[path] = v
		*dst = v
		return nil
	}
	switch p.Type {
	case config.CheckLDAP:
		if p.LDAP.BindDN != "" {
			if e := once("password_file", p.LDAP.PasswordFile, &p.LDAP.Password, readPasswordFile); e != nil {
				return e
			}
		}
		if f := p.LDAP.CAFile; f != "" && p.LDAP.TLS != "" {
			if v, ok := l.cas[f]; ok {
				p.LDAP.CA = v
			} else if !l.failed[f] {
				h := HTTPOptions{TLS: true, CAFile: f}
				if err := h.LoadCA(); err != nil {
					l.failed[f] = true
					return bad("ca_file", err)
				}
				l.cas[f], p.LDAP.CA = h.CA, h.CA
			}
		}
	case config.CheckRADIUS:
		if e := once("password_file", p.RADIUS.PasswordFile, &p.RADIUS.Password, readPasswordFile); e != nil {
			return e
		}
		// The cache is keyed by path: a file named both as a password
		// and as a secret is read once, by the rules of the first.
		if e := once("secret_file", p.RADIUS.SecretFile, &p.RADIUS.Secret, readSecretFile); e != nil {
			return e
		}
	}
	return nil
}

// ldapRADIUSSpec maps the ldap and radius fields of a check (FromConfig).
func ldapRADIUSSpec(p *ProbeSpec, c config.Check) {
	switch c.Type {
	case config.CheckLDAP:
		p.LDAP = LDAPOptions{TLS: c.TLS, BindDN: c.BindDN, BaseDN: c.BaseDN}
		if c.BindDN != "" {
			p.LDAP.PasswordFile = c.PasswordFile
		}
		if c.TLS != "" {
			p.LDAP.ServerName, p.LDAP.CAFile, p.LDAP.InsecureSkipVerify = c.ServerName, c.CAFile, c.InsecureSkipVerify
		}
	case config.CheckRADIUS:
		p.RADIUS = RADIUSOptions{User: c.User, PasswordFile: c.PasswordFile, SecretFile: c.SecretFile}
	}
}

// ldapRADIUSProber builds an ldap or radius prober (NewProber). LoadSpecs
// has read the files; a spec made otherwise reads them here, once per
// prober, never per probe.
func ldapRADIUSProber(p ProbeSpec) Prober {
	var pr Prober
	var err error
	switch p.Type {
	case config.CheckLDAP:
		pr, err = NewLDAP(p.LDAP)
	case config.CheckRADIUS:
		pr, err = NewRADIUS(p.RADIUS)
	}
	if err != nil {
		return broken{fmt.Errorf("%s check: %w", p.Type, err)}
	}
	return pr
}
