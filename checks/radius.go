package checks

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"layeh.com/radius"
	"layeh.com/radius/rfc2865"
	"layeh.com/radius/rfc2869"
)

// RADIUSOptions configure a radius check: an Access-Request for User.
type RADIUSOptions struct {
	User         string
	PasswordFile string
	Password     Secret // PasswordFile's content, read at load
	SecretFile   string
	Secret       Secret // SecretFile's content: the shared secret, read at load
}

// ErrRADIUSAnswer is an answer that is not an authentic reply to the
// request: a wrong shared secret on either side, or not a RADIUS server.
var ErrRADIUSAnswer = errors.New("RADIUS answer not authentic")

// nasIdentifier names the director in its requests: RFC 2865 section 4.1
// wants a NAS-Identifier or a NAS-IP-Address in every Access-Request, and
// servers log it.
const nasIdentifier = "directord-check"

// RADIUS checks a RADIUS server with one Access-Request over UDP. Any
// authentic answer (Access-Accept, Access-Reject, Access-Challenge) shows
// a server that knows the shared secret and is serving; an answer that is
// not authentic, an ICMP port unreachable or silence until the deadline
// fails.
type RADIUS struct{ RADIUSOptions }

// NewRADIUS builds a radius prober, reading the files LoadSpecs has not.
func NewRADIUS(o RADIUSOptions) (RADIUS, error) {
	if !o.Password.IsSet() && o.PasswordFile != "" {
		s, err := readPasswordFile(o.PasswordFile)
		if err != nil {
			return RADIUS{}, err
		}
		o.Password = s
	}
	if !o.Secret.IsSet() && o.SecretFile != "" {
		s, err := readSecretFile(o.SecretFile)
		if err != nil {
			return RADIUS{}, err
		}
		o.Secret = s
	}
	return RADIUS{o}, nil
}

// Probe implements Prober.
func (r RADIUS) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	// Any authentic answer will do: the code is not judged.
	if _, err := r.exchange(ctx, target); err != nil {
		return fail(ctx, start, fmt.Errorf("radius %s: %w", target, err))
	}
	return ok(start)
}

// request encodes an Access-Request. It carries a Message-Authenticator
// (RFC 3579), first, as the BlastRADIUS advice (CVE-2024-3596) has it:
// servers that require one, as FreeRADIUS may, drop requests without.
func (r RADIUS) request() ([]byte, error) {
	secret := []byte(r.Secret.Value())
	if len(secret) == 0 {
		return nil, errors.New("no shared secret (secret_file)")
	}
	p := radius.New(radius.CodeAccessRequest, secret)
	var zero [md5.Size]byte
	if err := rfc2869.MessageAuthenticator_Set(p, zero[:]); err != nil {
		return nil, err
	}
	if err := rfc2865.UserName_SetString(p, r.User); err != nil {
		return nil, fmt.Errorf("user: %w", err)
	}
	// The password is hidden with the secret and the request
	// authenticator (RFC 2865 section 5.2), never sent in clear.
	if err := rfc2865.UserPassword_SetString(p, r.Password.Value()); err != nil {
		return nil, fmt.Errorf("password: %w", err)
	}
	if err := rfc2865.NASIdentifier_SetString(p, nasIdentifier); err != nil {
		return nil, err
	}
	b, err := p.Encode()
	if err != nil {
		return nil, err
	}
	// The Message-Authenticator is the first attribute: its value is at
	// 20 (header) + 2 (type, length).
	mac := hmac.New(md5.New, secret)
	mac.Write(b)
	copy(b[22:38], mac.Sum(nil))
	return b, nil
}

// errStale is an answer to an earlier request (another identifier):
// ignored, the wait goes on.
var errStale = errors.New("stale answer")

// judge reads an answer b to the request req. It trusts nothing in b
// before checking it: lengths, the Response Authenticator (RFC 2865
// section 3) and, when present, the Message-Authenticator (RFC 3579
// section 3.2).
func judge(b, req, secret []byte) (radius.Code, error) {
	if len(b) < 20 {
		return 0, fmt.Errorf("%w: %d bytes, shorter than a RADIUS header", ErrRADIUSAnswer, len(b))
	}
	if b[1] != req[1] {
		return 0, errStale
	}
	n := int(binary.BigEndian.Uint16(b[2:4]))
	if n < 20 || n > len(b) || n > radius.MaxPacketLength {
		return 0, fmt.Errorf("%w: length field %d in a datagram of %d bytes", ErrRADIUSAnswer, n, len(b))
	}
	b = b[:n] // octets past the length are padding (RFC 2865 section 3)
	if !radius.IsAuthenticResponse(b, req, secret) {
		return 0, fmt.Errorf("%w: the Response Authenticator does not match; is secret_file the secret the server has for this director?", ErrRADIUSAnswer)
	}
	p, err := radius.Parse(b, secret)
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrRADIUSAnswer, err)
	}
	if err := checkMessageAuthenticator(b, req, p, secret); err != nil {
		return 0, err
	}
	switch p.Code {
	case radius.CodeAccessAccept, radius.CodeAccessReject, radius.CodeAccessChallenge:
		return p.Code, nil
	}
	return 0, fmt.Errorf("%w: code %d (%s) in answer to an Access-Request", ErrRADIUSAnswer, p.Code, p.Code)
}

// checkMessageAuthenticator verifies an answer's Message-Authenticator,
// if it has one: an HMAC-MD5 with the secret over the answer with the
// request's authenticator in place of its own and the attribute's value
// zeroed.
func checkMessageAuthenticator(b, req []byte, p *radius.Packet, secret []byte) error {
	vals, err := rfc2869.MessageAuthenticator_Gets(p)
	if err != nil || len(vals) == 0 {
		return nil
	}
	if len(vals) > 1 || len(vals[0]) != md5.Size {
		return fmt.Errorf("%w: malformed Message-Authenticator", ErrRADIUSAnswer)
	}
	c := make([]byte, len(b))
	copy(c, b)
	copy(c[4:20], req[4:20])
	// Find the attribute in the wire bytes; Parse has checked that
	// they are well formed.
	for i := 20; i+2 <= len(c); i += int(c[i+1]) {
		if radius.Type(c[i]) == rfc2869.MessageAuthenticator_Type {
			clear(c[i+2 : i+2+md5.Size])
			break
		}
	}
	mac := hmac.New(md5.New, secret)
	mac.Write(c)
	if !hmac.Equal(mac.Sum(nil), vals[0]) {
		return fmt.Errorf("%w: the Message-Authenticator does not match", ErrRADIUSAnswer)
	}
	return nil
}

func (r RADIUS) exchange(ctx context.Context, target netip.AddrPort) (radius.Code, error) {
	req, err := r.request()
	if err != nil {
		return 0, err
	}
	// A connected socket: the kernel drops datagrams from anyone but
	// the target, and an ICMP port unreachable fails the read at once.
	conn, err := (&net.Dialer{}).DialContext(ctx, "udp", target.String())
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(req); err != nil {
		return 0, fmt.Errorf("send: %w", err)
	}
	buf := make([]byte, radius.MaxPacketLength+1)
	secret := []byte(r.Secret.Value())
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return 0, fmt.Errorf("no answer: %w", err)
		}
		code, err := judge(buf[:n], req, secret)
		if errors.Is(err, errStale) {
			continue
		}
		return code, err
	}
}
