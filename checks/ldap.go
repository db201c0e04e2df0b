package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAPOptions configure an ldap check: a bind, then a base-scope search.
type LDAPOptions struct {
	// TLS is "" (plain LDAP), "starttls" (StartTLS before the bind) or
	// "ldaps" (TLS from the first byte).
	TLS string
	// ServerName, CAFile/CA and InsecureSkipVerify are as for https:
	// the verified name defaults to the target address (an IP SAN).
	ServerName         string
	CAFile             string
	CA                 *PEM // CAFile's content, read at load; nil: NewLDAP reads CAFile
	InsecureSkipVerify bool
	// BindDN binds with the password in PasswordFile, read at load into
	// Password; no BindDN: an anonymous bind.
	BindDN       string
	PasswordFile string
	Password     Secret
	// BaseDN is the entry the search reads; "" is the root DSE, which
	// every server has and anyone may read.
	BaseDN string
}

// ErrLDAPResult is a search that does not return the entry asked for.
var ErrLDAPResult = errors.New("unexpected LDAP search result")

// LDAP checks an LDAP server with one connection per probe: connect,
// StartTLS or TLS if asked, bind, and a base-scope search of BaseDN for
// (objectClass=*), which must return the entry. A bind refused or an
// entry missing fails, as a client would.
type LDAP struct {
	opts LDAPOptions
	tls  *tls.Config // nil without TLS
}

// NewLDAP builds an ldap prober; it fails if the password or the CA file
// cannot be read.
func NewLDAP(o LDAPOptions) (*LDAP, error) {
	if o.BindDN != "" && !o.Password.IsSet() && o.PasswordFile != "" {
		s, err := readPasswordFile(o.PasswordFile)
		if err != nil {
			return nil, err
		}
		o.Password = s
	}
	l := &LDAP{opts: o}
	switch o.TLS {
	case "":
		return l, nil
	case "starttls", "ldaps":
	default:
		return nil, fmt.Errorf("unknown tls %q (starttls or ldaps)", o.TLS)
	}
	// The name is set per probe when it is the target's address.
	l.tls = &tls.Config{ServerName: o.ServerName, InsecureSkipVerify: o.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		if o.CA == nil {
			h := HTTPOptions{TLS: true, CAFile: o.CAFile}
			if err := h.LoadCA(); err != nil {
				return nil, err
			}
			o.CA = h.CA
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.CA.b) {
			return nil, fmt.Errorf("ca file %s: no PEM certificates", o.CAFile)
		}
		l.tls.RootCAs = pool
	}
	return l, nil
}

// Probe implements Prober.
func (l *LDAP) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	if err := l.probe(ctx, target); err != nil {
		// The library's own request timeout, set to the deadline, can
		// fire a moment before ctx is done; say it was the deadline.
		if dl, ok := ctx.Deadline(); ok && ctx.Err() == nil && !time.Now().Before(dl) {
			err = fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
		}
		return fail(ctx, start, fmt.Errorf("ldap %s: %w", target, scrub(err, l.opts.Password.Value())))
	}
	return ok(start)
}

func (l *LDAP) probe(ctx context.Context, target netip.AddrPort) error {
	raw, err := (&net.Dialer{KeepAlive: -1}).DialContext(ctx, "tcp", target.String())
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	// The deadline bounds every read and write of the library, which
	// has no context of its own; ctx ending brings it forward.
	deadline, hasDeadline := ctx.Deadline()
	if hasDeadline {
		_ = raw.SetDeadline(deadline)
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	var tc *tls.Config
	if l.tls != nil {
		tc = l.tls.Clone()
		if tc.ServerName == "" {
			tc.ServerName = target.Addr().Unmap().WithZone("").String()
		}
	}
	conn := raw
	if l.opts.TLS == "ldaps" {
		c := tls.Client(raw, tc)
		if err := c.HandshakeContext(ctx); err != nil {
			raw.Close()
			return fmt.Errorf("tls: %w", err)
		}
		conn = c
	}
	lc := ldap.NewConn(conn, l.opts.TLS == "ldaps")
	lc.Start()
	// Each request waits at most until the deadline; so does Close,
	// which waits for the library's goroutines.
	timeout := time.Until(deadline)
	if !hasDeadline || timeout <= 0 {
		timeout = time.Millisecond
		if !hasDeadline {
			timeout = time.Minute
		}
	}
	lc.SetTimeout(timeout)
	defer lc.Close()

	if l.opts.TLS == "starttls" {
		if err := lc.StartTLS(tc); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	}
	if l.opts.BindDN != "" {
		// An empty password is refused by the library: to a server it
		// is an unauthenticated bind, which proves nothing.
		if err := lc.Bind(l.opts.BindDN, l.opts.Password.Value()); err != nil {
			return fmt.Errorf("bind as %q: %w", l.opts.BindDN, err)
		}
	} else if err := lc.UnauthenticatedBind(""); err != nil {
		return fmt.Errorf("anonymous bind: %w", err)
	}
	res, err := lc.Search(&ldap.SearchRequest{
		BaseDN:     l.opts.BaseDN,
		Scope:      ldap.ScopeBaseObject,
		Filter:     "(objectClass=*)",
		Attributes: []string{"1.1"}, // no attributes: the entry is enough
		SizeLimit:  1,
		TimeLimit:  max(1, int(timeout/time.Second)),
	})
	if err != nil {
		return fmt.Errorf("search %q: %w", l.opts.BaseDN, err)
	}
	if len(res.Entries) == 0 {
		return fmt.Errorf("%w: search %q returned no entry", ErrLDAPResult, l.opts.BaseDN)
	}
	return nil
}
