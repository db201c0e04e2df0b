package checks

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"errors"
	"io"
	"log"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/config"
	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

const (
	radiusTestSecret   = "testing123"
	radiusTestUser     = "monitor"
	radiusTestPassword = "pw of the monitor"
)

// validRequestMA says whether a request's Message-Authenticator is there
// and right, as a server requiring one checks it (RFC 3579 section 3.2).
func validRequestMA(r *radius.Request, secret []byte) bool {
	got := rfc2869.MessageAuthenticator_Get(r.Packet)
	if len(got) != md5.Size {
		return false
	}
	p := *r.Packet
	p.Attributes = append(radius.Attributes(nil), r.Attributes...)
	var zero [md5.Size]byte
	if err := rfc2869.MessageAuthenticator_Set(&p, zero[:]); err != nil {
		return false
	}
	b, err := p.MarshalBinary()
	if err != nil {
		return false
	}
	mac := hmac.New(md5.New, secret)
	mac.Write(b)
	return hmac.Equal(mac.Sum(nil), got)
}

// startRADIUS runs layeh's server with the given secret: it accepts
// radiusTestUser with radiusTestPassword and rejects anyone else. With
// requireMA it drops requests without a valid Message-Authenticator, as
// FreeRADIUS does with require_message_authenticator. answer, if set,
// replaces the answer's wire bytes.
func startRADIUS(t *testing.T, secret string, requireMA bool, answer func(b []byte, req *radius.Packet) []byte) (netip.AddrPort, *atomic.Int32) {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var accepts atomic.Int32
	srv := &radius.PacketServer{
		SecretSource: radius.StaticSecretSource([]byte(secret)),
		ErrorLog:     log.New(io.Discard, "", 0),
		Handler: radius.HandlerFunc(func(w radius.ResponseWriter, r *radius.Request) {
			if requireMA && !validRequestMA(r, []byte(secret)) || rfc2865.NASIdentifier_GetString(r.Packet) == "" {
				return
			}
			code := radius.CodeAccessReject
			if rfc2865.UserName_GetString(r.Packet) == radiusTestUser && rfc2865.UserPassword_GetString(r.Packet) == radiusTestPassword {
				code = radius.CodeAccessAccept
				accepts.Add(1)
			}
			resp := r.Response(code)
			if answer == nil {
				_ = w.Write(resp)
				return
			}
			b, err := resp.Encode()
			if err != nil {
				t.Error(err)
				return
			}
			_, _ = pc.WriteTo(answer(b, r.Packet), r.RemoteAddr)
		}),
	}
	go func() { _ = srv.Serve(pc) }()
	t.Cleanup(func() { _ = srv.Shutdown(context.Background()) })
	return netip.MustParseAddrPort(pc.LocalAddr().String()), &accepts
}

func radiusOpts(secret, password string) RADIUSOptions {
	return RADIUSOptions{User: radiusTestUser, Password: NewSecret(password), Secret: NewSecret(secret)}
}

func TestRADIUS(t *testing.T) {
	good, accepts := startRADIUS(t, radiusTestSecret, true, nil)
	otherSecret, _ := startRADIUS(t, "not the same secret", false, nil)
	// An answer whose last byte is changed: its authenticator no
	// longer matches.
	tampered, _ := startRADIUS(t, radiusTestSecret, true, func(b []byte, _ *radius.Packet) []byte { b[len(b)-1] ^= 1; return b })
	// An Accounting-Response, rightly signed, is not an answer to an
	// Access-Request.
	wrongCode, _ := startRADIUS(t, radiusTestSecret, true, func(b []byte, req *radius.Packet) []byte {
		b[0] = byte(radius.CodeAccountingResponse)
		return resign(b, req, radiusTestSecret)
	})
	// A correct Response Authenticator but a wrong Message-Authenticator.
	badMA, _ := startRADIUS(t, radiusTestSecret, true, func(b []byte, req *radius.Packet) []byte {
		p, err := radius.Parse(b, []byte(radiusTestSecret))
		if err != nil {
			t.Error(err)
			return b
		}
		_ = rfc2869.MessageAuthenticator_Set(p, make([]byte, md5.Size))
		w, _ := p.MarshalBinary()
		return resign(w, req, radiusTestSecret)
	})
	tests := []struct {
		name    string
		o       RADIUSOptions
		target  netip.AddrPort
		errLike string // "" for a healthy result
	}{
		{"accept", radiusOpts(radiusTestSecret, radiusTestPassword), good, ""},
		{"reject is alive", radiusOpts(radiusTestSecret, "wrong password"), good, ""},
		{"other secret", radiusOpts(radiusTestSecret, radiusTestPassword), otherSecret, "Response Authenticator does not match"},
		{"tampered", radiusOpts(radiusTestSecret, radiusTestPassword), tampered, "Response Authenticator does not match"},
		{"accounting response", radiusOpts(radiusTestSecret, radiusTestPassword), wrongCode, "code 5"},
		{"bad Message-Authenticator", radiusOpts(radiusTestSecret, radiusTestPassword), badMA, "Message-Authenticator does not match"},
		{"no secret", radiusOpts("", radiusTestPassword), good, "no shared secret"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			r := RADIUS{tt.o}.Probe(ctx, tt.target)
			switch {
			case tt.errLike == "" && !r.OK:
				t.Fatalf("want healthy, got %v", r.Err)
			case tt.errLike != "" && r.OK:
				t.Fatalf("want a failure like %q, got healthy", tt.errLike)
			case tt.errLike != "" && !strings.Contains(r.Err.Error(), tt.errLike):
				t.Fatalf("error %q does not say %q", r.Err, tt.errLike)
			}
			// The server accepted: it saw the user and the password as sent.
			if tt.name == "accept" && accepts.Load() != 1 {
				t.Errorf("the server accepted %d requests, want 1", accepts.Load())
			}
			if r.Err != nil && (strings.Contains(r.Err.Error(), radiusTestPassword) || strings.Contains(r.Err.Error(), radiusTestSecret)) {
				t.Errorf("a secret shows in %q", r.Err)
			}
		})
	}
}

// resign recomputes the Response Authenticator of answer b to req, so
// that only what the test changed is wrong.
func resign(b []byte, req *radius.Packet, secret string) []byte {
	h := md5.New()
	h.Write(b[:4])
	h.Write(req.Authenticator[:])
	h.Write(b[20:])
	h.Write([]byte(secret))
	copy(b[4:20], h.Sum(nil))
	return b
}

// Silence and an ICMP port unreachable both fail: the first at the
// deadline, the second at once.
func TestRADIUSNoAnswer(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	silent := netip.MustParseAddrPort(pc.LocalAddr().String())
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := RADIUS{radiusOpts(radiusTestSecret, radiusTestPassword)}.Probe(ctx, silent)
	if r.OK || !strings.Contains(r.Err.Error(), "no answer") {
		t.Errorf("silent server: %+v", r)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %s with a 300ms timeout", d)
	}

	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := netip.MustParseAddrPort(closed.LocalAddr().String())
	closed.Close()
	ctx2, cancel2 := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel2()
	start = time.Now()
	r = RADIUS{radiusOpts(radiusTestSecret, radiusTestPassword)}.Probe(ctx2, target)
	if r.OK || !errors.Is(r.Err, syscall.ECONNREFUSED) {
		t.Errorf("closed port: %+v", r)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("closed port took %s: the ICMP error was not seen", d)
	}
}

// The files a radius check names are read at load, with the password
// file rules: a secret others can read is refused, naming the key.
func TestRADIUSFiles(t *testing.T) {
	dir := fileDir(t)
	target, _ := startRADIUS(t, radiusTestSecret, true, nil)
	pw, secret := filepath.Join(dir, "user.pw"), filepath.Join(dir, "radius.secret")
	writeMode(t, pw, radiusTestPassword+"\n", 0o600)
	writeMode(t, secret, radiusTestSecret+"\r\n", 0o600)
	cfg := &config.Config{Services: []config.Service{{
		Name: "radius",
		Check: config.Check{Type: config.CheckRADIUS, Timeout: time.Second,
			User: radiusTestUser, PasswordFile: pw, SecretFile: secret},
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
	// A spec made without LoadSpecs reads the files itself.
	if r := NewProber(FromConfig(cfg.Services[0].Check, &cfg.Services[0].RealServers[0])).Probe(ctx, target); !r.OK {
		t.Fatalf("probe of a spec not loaded: %v", r.Err)
	}

	writeMode(t, secret, radiusTestSecret, 0o644)
	_, err = LoadSpecs(cfg)
	if err == nil || !strings.Contains(err.Error(), "services[0].check.secret_file: secret file") {
		t.Fatalf("a world-readable secret: %v", err)
	}
	writeMode(t, secret, "\n", 0o600)
	if _, err = LoadSpecs(cfg); err == nil || !strings.Contains(err.Error(), "is empty") {
		t.Fatalf("an empty secret: %v", err)
	}
	cfg.Services[0].Check.PasswordFile = filepath.Join(dir, "missing.pw")
	if _, err = LoadSpecs(cfg); err == nil || !strings.Contains(err.Error(), "services[0].check.password_file: password file") {
		t.Fatalf("a missing password file: %v", err)
	}
}

// FuzzRADIUSAnswer feeds judge arbitrary answers: it must never panic,
// and must call nothing authentic that is not signed with the secret.
func FuzzRADIUSAnswer(f *testing.F) {
	req, err := RADIUS{radiusOpts(radiusTestSecret, radiusTestPassword)}.request()
	if err != nil {
		f.Fatal(err)
	}
	// A fixed identifier and authenticator, so that an input found once
	// means the same at every run (judge does not check the request).
	req[1] = 0x42
	copy(req[4:20], "0123456789abcdef")
	p, _ := radius.Parse(req, []byte(radiusTestSecret))
	ans, _ := p.Response(radius.CodeAccessAccept).Encode()
	f.Add(ans)
	f.Add(ans[:20])
	f.Add(append(append([]byte(nil), ans...), 0, 0, 0))
	f.Add([]byte{2, req[1], 0, 19})
	f.Fuzz(func(t *testing.T, b []byte) {
		code, err := judge(b, req, []byte(radiusTestSecret))
		if err != nil {
			return
		}
		if len(b) < 20 || !radius.IsAuthenticResponse(b[:int(b[2])<<8|int(b[3])], req, []byte(radiusTestSecret)) {
			t.Fatalf("judged authentic (code %v) without a valid authenticator: %x", code, b)
		}
	})
}
