package checks

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"

	"github.com/directorlb/director/config"
)

// LDAP protocol operations (RFC 4511 section 4.2 on), as application tags.
const (
	ldapBindRequest      = 0
	ldapBindResponse     = 1
	ldapUnbindRequest    = 2
	ldapSearchRequest    = 3
	ldapSearchEntry      = 4
	ldapSearchDone       = 5
	ldapExtendedRequest  = 23
	ldapExtendedResponse = 24

	ldapSuccess             = 0
	ldapNoSuchObject        = 32
	ldapInvalidCredentials  = 49
	ldapOIDStartTLS         = "1.3.6.1.4.1.1466.20037"
	ldapScopeBaseObject     = 0
	ldapTestBindDN          = "cn=monitor,dc=example,dc=com"
	ldapTestPassword        = "s3cret pw"
	ldapTestBaseDN          = "dc=example,dc=com"
	ldapTestStartTLSRefused = "starttls refused"
)

// ldapServer is a small LDAP responder: a simple bind (anonymous, or
// ldapTestBindDN with ldapTestPassword), StartTLS, and base-scope
// searches of the root DSE and ldapTestBaseDN. It answers what a
// directory answers and nothing more: enough to tell a correct client
// from one that sends the wrong thing.
type ldapServer struct {
	ln     net.Listener
	tls    *tls.Config // for StartTLS; nil refuses it
	silent bool        // read everything, answer nothing

	mu       sync.Mutex
	searches []string // the base DNs searched, in order
}

func startLDAP(t *testing.T, s *ldapServer, ldaps bool) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if ldaps {
		ln = tls.NewListener(ln, s.tls)
	}
	s.ln = ln
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.serve(c) })
		}
	})
	return netip.MustParseAddrPort(ln.Addr().String())
}

func ldapMessage(id int64, op *ber.Packet) []byte {
	m := ber.NewSequence("LDAPMessage")
	m.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagInteger, id, "messageID"))
	m.AppendChild(op)
	return m.Bytes()
}

func ldapResult(tag ber.Tag, code int64) *ber.Packet {
	r := ber.Encode(ber.ClassApplication, ber.TypeConstructed, tag, nil, "LDAPResult")
	r.AppendChild(ber.NewInteger(ber.ClassUniversal, ber.TypePrimitive, ber.TagEnumerated, code, "resultCode"))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "matchedDN"))
	r.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, "", "diagnosticMessage"))
	return r
}

func (s *ldapServer) serve(c net.Conn) {
	defer func() { c.Close() }()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		p, err := ber.ReadPacket(c)
		if err != nil || s.silent {
			if err == nil {
				continue
			}
			return
		}
		if len(p.Children) < 2 {
			return
		}
		id, _ := p.Children[0].Value.(int64)
		op := p.Children[1]
		var out []byte
		switch op.Tag {
		case ldapBindRequest:
			if len(op.Children) < 3 {
				return
			}
			name, pw := op.Children[1].Data.String(), op.Children[2].Data.String()
			code := int64(ldapInvalidCredentials)
			if name == "" && pw == "" || name == ldapTestBindDN && pw == ldapTestPassword {
				code = ldapSuccess
			}
			out = ldapMessage(id, ldapResult(ldapBindResponse, code))
		case ldapSearchRequest:
			if len(op.Children) < 2 {
				return
			}
			base := op.Children[0].Data.String()
			scope, _ := op.Children[1].Value.(int64)
			s.mu.Lock()
			s.searches = append(s.searches, base)
			s.mu.Unlock()
			if scope != ldapScopeBaseObject || base != "" && base != ldapTestBaseDN {
				out = ldapMessage(id, ldapResult(ldapSearchDone, ldapNoSuchObject))
				break
			}
			e := ber.Encode(ber.ClassApplication, ber.TypeConstructed, ldapSearchEntry, nil, "SearchResultEntry")
			e.AppendChild(ber.NewString(ber.ClassUniversal, ber.TypePrimitive, ber.TagOctetString, base, "objectName"))
			e.AppendChild(ber.NewSequence("attributes"))
			out = append(ldapMessage(id, e), ldapMessage(id, ldapResult(ldapSearchDone, ldapSuccess))...)
		case ldapUnbindRequest:
			return
		case ldapExtendedRequest:
			if len(op.Children) < 1 || op.Children[0].Data.String() != ldapOIDStartTLS || s.tls == nil {
				r := ldapResult(ldapExtendedResponse, 2) // protocolError
				if _, err := c.Write(ldapMessage(id, r)); err != nil {
					return
				}
				continue
			}
			if _, err := c.Write(ldapMessage(id, ldapResult(ldapExtendedResponse, ldapSuccess))); err != nil {
				return
			}
			c = tls.Server(c, s.tls)
			continue
		default:
			return
		}
		if _, err := c.Write(out); err != nil {
			return
		}
	}
}

// testCert is httptest's certificate (for 127.0.0.1, ::1 and
// example.com, its own CA) and its PEM.
func testCert(t *testing.T) (*tls.Config, *PEM) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	srv.StartTLS()
	cfg := &tls.Config{Certificates: srv.TLS.Certificates}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	srv.Close()
	return cfg, NewPEM(ca)
}

func TestLDAP(t *testing.T) {
	cert, ca := testCert(t)
	plain := &ldapServer{tls: cert}
	plainAddr := startLDAP(t, plain, false)
	ldaps := &ldapServer{tls: cert}
	ldapsAddr := startLDAP(t, ldaps, true)
	bind := LDAPOptions{BindDN: ldapTestBindDN, Password: NewSecret(ldapTestPassword)}
	withTLS := func(o LDAPOptions, mode string) LDAPOptions {
		o.TLS, o.CA, o.CAFile = mode, ca, "ca.pem"
		return o
	}
	tests := []struct {
		name    string
		o       LDAPOptions
		target  netip.AddrPort
		errLike string // "" for a healthy result
	}{
		{"anonymous, root DSE", LDAPOptions{}, plainAddr, ""},
		{"bind, base", LDAPOptions{BindDN: ldapTestBindDN, Password: NewSecret(ldapTestPassword), BaseDN: ldapTestBaseDN}, plainAddr, ""},
		{"wrong password", LDAPOptions{BindDN: ldapTestBindDN, Password: NewSecret("nope")}, plainAddr, "Invalid Credentials"},
		{"empty password", LDAPOptions{BindDN: ldapTestBindDN, Password: NewSecret("")}, plainAddr, "empty password"},
		{"no such base", LDAPOptions{BaseDN: "dc=missing"}, plainAddr, "No Such Object"},
		{"starttls", withTLS(bind, "starttls"), plainAddr, ""},
		{"starttls, wrong name", func() LDAPOptions { o := withTLS(bind, "starttls"); o.ServerName = "wrong.example.net"; return o }(), plainAddr, "wrong.example.net"},
		{"starttls, no CA", LDAPOptions{TLS: "starttls"}, plainAddr, "certificate"},
		{"starttls, no CA, insecure", LDAPOptions{TLS: "starttls", InsecureSkipVerify: true}, plainAddr, ""},
		{"ldaps", withTLS(bind, "ldaps"), ldapsAddr, ""},
		{"ldaps, name from server_name", func() LDAPOptions { o := withTLS(bind, "ldaps"); o.ServerName = "example.com"; return o }(), ldapsAddr, ""},
		{"ldaps on a plain port", withTLS(bind, "ldaps"), plainAddr, "tls"},
		{"plain on an ldaps port", LDAPOptions{}, ldapsAddr, "ldap"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := NewLDAP(tt.o)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			r := p.Probe(ctx, tt.target)
			switch {
			case tt.errLike == "" && !r.OK:
				t.Fatalf("want healthy, got %v", r.Err)
			case tt.errLike != "" && r.OK:
				t.Fatalf("want a failure like %q, got healthy", tt.errLike)
			case tt.errLike != "" && !strings.Contains(r.Err.Error(), tt.errLike):
				t.Fatalf("error %q does not say %q", r.Err, tt.errLike)
			}
			if r.Err != nil && strings.Contains(r.Err.Error(), ldapTestPassword) {
				t.Errorf("the password shows in %q", r.Err)
			}
		})
	}
	plain.mu.Lock()
	defer plain.mu.Unlock()
	if len(plain.searches) == 0 || plain.searches[0] != "" {
		t.Errorf("searches %q: want the root DSE first", plain.searches)
	}
}

// A server that accepts and never answers fails the probe at its
// deadline, not later.
func TestLDAPTimeout(t *testing.T) {
	target := startLDAP(t, &ldapServer{silent: true}, false)
	p, err := NewLDAP(LDAPOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := p.Probe(ctx, target)
	if r.OK {
		t.Fatal("a silent server is healthy")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("probe took %s with a 300ms timeout", d)
	}
	if !strings.Contains(r.Err.Error(), "deadline") && !strings.Contains(r.Err.Error(), "timeout") {
		t.Errorf("error %q does not say it timed out", r.Err)
	}
}

// A closed port fails at once, and a spec that cannot be built fails
// every probe saying why.
func TestLDAPRefusedAndBroken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := netip.MustParseAddrPort(ln.Addr().String())
	ln.Close()
	p, _ := NewLDAP(LDAPOptions{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if r := p.Probe(ctx, target); r.OK || !errors.Is(r.Err, syscall.ECONNREFUSED) {
		t.Errorf("closed port: %+v", r)
	}
	r := NewProber(ProbeSpec{Type: "ldap", LDAP: LDAPOptions{TLS: "ldaps", CAFile: "/nonexistent/ca.pem"}}).Probe(ctx, target)
	if r.OK || !strings.Contains(r.Err.Error(), "ldap check: ca file") {
		t.Errorf("broken prober: %+v", r)
	}
}

// The password and CA files of an ldap check are read at load, once, and
// a password file others can read is refused, naming the key.
func TestLDAPFiles(t *testing.T) {
	dir := fileDir(t)
	cert, ca := testCert(t)
	target := startLDAP(t, &ldapServer{tls: cert}, false)
	pw, caFile := filepath.Join(dir, "ldap.pw"), filepath.Join(dir, "ca.pem")
	writeMode(t, pw, ldapTestPassword+"\n", 0o600)
	writeMode(t, caFile, string(ca.b), 0o644)
	cfg := &config.Config{Services: []config.Service{{
		Name: "ldap",
		Check: config.Check{Type: config.CheckLDAP, Timeout: time.Second, TLS: "starttls", CAFile: caFile,
			BindDN: ldapTestBindDN, PasswordFile: pw, BaseDN: ldapTestBaseDN},
		RealServers: []config.RealServer{{Address: target.Addr(), Port: target.Port()}},
	}}}
	specs, err := LoadSpecs(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if r := NewProber(specs[0].Probe).Probe(ctx, target); !r.OK {
		t.Fatalf("probe with the loaded files: %v", r.Err)
	}
	if r := NewProber(FromConfig(cfg.Services[0].Check, &cfg.Services[0].RealServers[0])).Probe(ctx, target); !r.OK {
		t.Fatalf("probe of a spec not loaded: %v", r.Err)
	}
	writeMode(t, pw, ldapTestPassword, 0o640)
	if _, err := LoadSpecs(cfg); err == nil || !strings.Contains(err.Error(), "services[0].check.password_file: password file") {
		t.Fatalf("a password file others can read: %v", err)
	}
}
