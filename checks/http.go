package checks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/directorlb/director/config"
)

// HTTPOptions configure an HTTP or HTTPS prober.
type HTTPOptions struct {
	TLS    bool   // https
	Method string // default GET
	Path   string // default /
	Host   string // Host header; default the target address
	// ExpectStatus lists the acceptable status codes; empty means 200-299.
	// Redirects are not followed, so a 3xx is judged like any status.
	ExpectStatus []config.StatusRange
	// BodyRegexp, if set, must match within the first maxRead bytes.
	BodyRegexp string
	// ServerName is the TLS SNI and verified name; default Host (without
	// a port) if set, else the target address (verified as an IP SAN).
	ServerName         string
	CAFile             string // PEM bundle to verify against instead of the system roots
	InsecureSkipVerify bool
}

// HTTP probes with one request per probe and no connection reuse, so each
// probe exercises a fresh connect (and handshake) like a new client would.
type HTTP struct {
	opts   HTTPOptions
	body   *regexp.Regexp
	client *http.Client
}

// NewHTTP builds an HTTP prober; it fails if the CA file cannot be read or
// the body regexp does not compile.
func NewHTTP(o HTTPOptions) (*HTTP, error) {
	h := &HTTP{opts: o}
	if o.BodyRegexp != "" {
		re, err := regexp.Compile(o.BodyRegexp)
		if err != nil {
			return nil, fmt.Errorf("body regexp: %w", err)
		}
		h.body = re
	}
	tr := &http.Transport{
		DisableKeepAlives: true,
		// The target is always an address; a configured proxy would
		// check the proxy, not the real server.
		Proxy:                  nil,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxRead,
	}
	if o.TLS {
		tc := &tls.Config{InsecureSkipVerify: o.InsecureSkipVerify, ServerName: o.ServerName}
		if tc.ServerName == "" && o.Host != "" {
			tc.ServerName = hostOnly(o.Host)
		}
		if o.CAFile != "" {
			pem, err := os.ReadFile(o.CAFile)
			if err != nil {
				return nil, fmt.Errorf("ca file: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca file %s: no PEM certificates", o.CAFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	h.client = &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return h, nil
}

func hostOnly(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return hostport
}

// Probe implements Prober.
func (h *HTTP) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	scheme := "http"
	if h.opts.TLS {
		scheme = "https"
	}
	path := h.opts.Path
	if path == "" {
		path = "/"
	}
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	u, err := url.Parse(scheme + "://" + target.String() + path)
	if err != nil {
		return fail(ctx, start, fmt.Errorf("url: %w", err))
	}
	method := h.opts.Method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return fail(ctx, start, fmt.Errorf("request: %w", err))
	}
	if h.opts.Host != "" {
		req.Host = h.opts.Host
	}
	req.Header.Set("User-Agent", "directord-check")
	resp, err := h.client.Do(req)
	if err != nil {
		return fail(ctx, start, err)
	}
	defer resp.Body.Close()
	if !statusOK(resp.StatusCode, h.opts.ExpectStatus) {
		return fail(ctx, start, fmt.Errorf("status %d", resp.StatusCode))
	}
	if h.body != nil {
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxRead))
		if err != nil && !errors.Is(err, io.EOF) {
			return fail(ctx, start, fmt.Errorf("read body: %w", err))
		}
		if !h.body.Match(b) {
			return fail(ctx, start, fmt.Errorf("body does not match %q (read %d bytes)", h.opts.BodyRegexp, len(b)))
		}
	}
	return ok(start)
}

func statusOK(code int, ranges []config.StatusRange) bool {
	if len(ranges) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range ranges {
		if code >= r.Min && code <= r.Max {
			return true
		}
	}
	return false
}
