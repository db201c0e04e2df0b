package checks

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

func serverAddr(t *testing.T, s *httptest.Server) netip.AddrPort {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddrPort(u.Host)
}

func mustHTTP(t *testing.T, o HTTPOptions) *HTTP {
	t.Helper()
	h, err := NewHTTP(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestHTTP(t *testing.T) {
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "status: all good") })
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/redirect", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/slowbody", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "status: ")
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/echo", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "method=%s host=%s", r.Method, r.Host)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close
	target := serverAddr(t, srv)

	tests := []struct {
		name    string
		o       HTTPOptions
		ok      bool
		errLike string
	}{
		{"200", HTTPOptions{Path: "/ok"}, true, ""},
		{"path without slash", HTTPOptions{Path: "ok"}, true, ""},
		{"503", HTTPOptions{Path: "/down"}, false, "status 503"},
		{"503 expected", HTTPOptions{Path: "/down", ExpectStatus: []config.StatusRange{{Min: 200, Max: 200}, {Min: 500, Max: 599}}}, true, ""},
		{"200 not in list", HTTPOptions{Path: "/ok", ExpectStatus: []config.StatusRange{{Min: 204, Max: 204}}}, false, "status 200"},
		{"body matches", HTTPOptions{Path: "/ok", BodyRegexp: `all\s+good`}, true, ""},
		{"wrong body", HTTPOptions{Path: "/down", ExpectStatus: []config.StatusRange{{Min: 503, Max: 503}}, BodyRegexp: "good"}, false, "body does not match"},
		{"redirect not followed", HTTPOptions{Path: "/redirect"}, false, "status 302"},
		{"redirect accepted", HTTPOptions{Path: "/redirect", ExpectStatus: []config.StatusRange{{Min: 300, Max: 399}}}, true, ""},
		{"hang", HTTPOptions{Path: "/hang"}, false, "deadline exceeded"},
		{"slow body", HTTPOptions{Path: "/slowbody", BodyRegexp: "good"}, false, "deadline exceeded"},
		{"method and host", HTTPOptions{Path: "/echo", Method: "HEAD", Host: "www.example.test"}, true, ""},
		{"host header sent", HTTPOptions{Path: "/echo", Host: "www.example.test", BodyRegexp: `^method=GET host=www\.example\.test$`}, true, ""},
		{"plain http to closed port", HTTPOptions{Path: "/ok"}, false, "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tgt := target
			if strings.HasPrefix(tt.name, "plain http to closed") {
				tgt = closedPort(t)
			}
			r := probeWithin(t, mustHTTP(t, tt.o), tgt, 300*time.Millisecond)
			if r.OK != tt.ok {
				t.Fatalf("OK = %v (err %v), want %v", r.OK, r.Err, tt.ok)
			}
			if tt.errLike != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.errLike)) {
				t.Fatalf("err = %v, want it to mention %q", r.Err, tt.errLike)
			}
		})
	}
}

func TestHTTPBuildErrors(t *testing.T) {
	if _, err := NewHTTP(HTTPOptions{BodyRegexp: "("}); err == nil || !strings.Contains(err.Error(), "body regexp") {
		t.Errorf("bad regexp: err = %v", err)
	}
	if _, err := NewHTTP(HTTPOptions{TLS: true, CAFile: filepath.Join(t.TempDir(), "missing.pem")}); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing CA file: err = %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.pem")
	os.WriteFile(empty, []byte("not pem"), 0o600)
	if _, err := NewHTTP(HTTPOptions{TLS: true, CAFile: empty}); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Errorf("CA file without certificates: err = %v", err)
	}
	// NewProber turns a build error into a prober that explains itself.
	r := NewProber(ProbeSpec{Type: "https", HTTP: HTTPOptions{BodyRegexp: "("}}).Probe(t.Context(), netip.AddrPort{})
	if r.OK || r.Err == nil || !strings.Contains(r.Err.Error(), "https check: body regexp") {
		t.Errorf("broken prober: %+v", r)
	}
}

func TestHTTPS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "sni=%s", r.TLS.ServerName)
	}))
	// The failing cases make the server log handshake errors; they are expected.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	target := serverAddr(t, srv)
	// httptest's certificate is self-signed for 127.0.0.1, ::1 and
	// example.com: the certificate is its own CA.
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		o       HTTPOptions
		ok      bool
		errLike string
	}{
		{"with CA, IP SAN", HTTPOptions{TLS: true, CAFile: ca}, true, ""},
		{"without CA", HTTPOptions{TLS: true}, false, "certificate"},
		{"skip verify", HTTPOptions{TLS: true, InsecureSkipVerify: true}, true, ""},
		{"server name matches", HTTPOptions{TLS: true, CAFile: ca, ServerName: "example.com", BodyRegexp: "^sni=example.com$"}, true, ""},
		{"server name from host header", HTTPOptions{TLS: true, CAFile: ca, Host: "example.com:443", BodyRegexp: "^sni=example.com$"}, true, ""},
		{"server name mismatch", HTTPOptions{TLS: true, CAFile: ca, ServerName: "wrong.example.net"}, false, "wrong.example.net"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := probeWithin(t, mustHTTP(t, tt.o), target, 2*time.Second)
			if r.OK != tt.ok {
				t.Fatalf("OK = %v (err %v), want %v", r.OK, r.Err, tt.ok)
			}
			if tt.errLike != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), tt.errLike)) {
				t.Fatalf("err = %v, want it to mention %q", r.Err, tt.errLike)
			}
		})
	}
}
