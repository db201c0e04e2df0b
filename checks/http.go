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
	"regexp"
	"strings"
	"sync"
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
	CA                 *PEM   // CAFile's content, read at load by LoadCA; nil: NewHTTP reads CAFile
	InsecureSkipVerify bool
	// Digest, if set, is "md5:HEX" or "sha256:HEX": the whole body (at
	// most maxDigestBody bytes) must have it (digest.go).
	Digest string `json:",omitempty"`
}

// HTTP probes with one request per probe and no connection reuse, so each
// probe exercises a fresh connect (and handshake) like a new client would.
type HTTP struct {
	opts   HTTPOptions
	body   *regexp.Regexp
	digest *bodyDigest // nil: none
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
	if o.Digest != "" {
		d, err := parseBodyDigest(o.Digest)
		if err != nil {
			return nil, err
		}
		h.digest = d
	}
	k := clientKey{tls: o.TLS}
	var pem []byte
	if o.TLS {
		k.insecure, k.serverName = o.InsecureSkipVerify, o.ServerName
		if k.serverName == "" && o.Host != "" {
			k.serverName = hostOnly(o.Host)
		}
		if o.CAFile != "" {
			// SpecsFor reads the bundle once per load (a reload sees a
			// changed bundle, which then gets a client of its own); a
			// caller that did not is served the same way, never
			// blocking on a FIFO nor reading without bound.
			if o.CA == nil {
				if err := o.LoadCA(); err != nil {
					return nil, err
				}
			}
			pem, k.ca = o.CA.b, o.CA.sum
		}
	}
	c, err := sharedClient(k, pem, o.CAFile)
	if err != nil {
		return nil, err
	}
	h.client = c
	return h, nil
}

// clientKey is what distinguishes the transports of HTTP probers: their
// TLS settings. Everything else about a probe is in its request.
type clientKey struct {
	tls, insecure bool
	serverName    string   // empty: the transport verifies the target address
	ca            [32]byte // SHA-256 of the CA bundle; zero for the system roots
}

// clients holds one client per TLS configuration in use, shared by every
// prober with that configuration: a transport and its TLS state cost
// kilobytes, too much per check when there are thousands. With
// keep-alives off a transport holds no connections between requests, so
// an entry a reload no longer uses costs only its few structs; there are
// as many as distinct TLS settings ever configured.
var clients struct {
	sync.Mutex
	m map[clientKey]*http.Client
}

func sharedClient(k clientKey, pem []byte, caFile string) (*http.Client, error) {
	clients.Lock()
	defer clients.Unlock()
	if c := clients.m[k]; c != nil {
		return c, nil
	}
	tr := &http.Transport{
		DisableKeepAlives: true,
		// The target is always an address; a configured proxy would
		// check the proxy, not the real server.
		Proxy:                  nil,
		DisableCompression:     true,
		MaxResponseHeaderBytes: maxRead,
		// No TCP keep-alive on connections used for one request.
		DialContext: (&net.Dialer{KeepAlive: -1}).DialContext,
	}
	if k.tls {
		tc := &tls.Config{InsecureSkipVerify: k.insecure, ServerName: k.serverName}
		if pem != nil {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("ca file %s: no PEM certificates", caFile)
			}
			tc.RootCAs = pool
		}
		tr.TLSClientConfig = tc
	}
	c := &http.Client{
		Transport: tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	if clients.m == nil {
		clients.m = map[clientKey]*http.Client{}
	}
	clients.m[k] = c
	return c, nil
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
	if h.body != nil || h.digest != nil {
		limit := int64(maxRead)
		if h.digest != nil {
			limit = maxDigestBody + 1 // one more, to tell a longer body
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit))
		if err != nil && !errors.Is(err, io.EOF) {
			return fail(ctx, start, fmt.Errorf("read body: %w", err))
		}
		if h.digest != nil {
			if len(b) > maxDigestBody {
				return fail(ctx, start, fmt.Errorf("body longer than the %d bytes a digest is taken of", maxDigestBody))
			}
			if err := h.digest.check(b); err != nil {
				return fail(ctx, start, err)
			}
		}
		if h.body != nil && !h.body.Match(b[:min(len(b), maxRead)]) {
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
