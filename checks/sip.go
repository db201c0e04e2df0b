package checks

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// SIP sends an OPTIONS request over UDP and takes any final response
// (status 200 to 699) to it as alive: a server that answers, even "busy"
// or "forbidden", is a SIP server up. Provisional responses (1xx) and
// datagrams that are not a response to this request (another Call-ID or
// CSeq) are skipped; an ICMP port unreachable is a failure. The request is
// sent again every sipT1 until the timeout, as RFC 3261's timer A does.
type SIP struct{}

// sipT1 is RFC 3261's round-trip estimate, the first retransmission time.
const sipT1 = 500 * time.Millisecond

// ErrSIPResponse is a datagram that is not a well-formed SIP response.
var ErrSIPResponse = errors.New("malformed SIP response")

// Probe implements Prober.
func (SIP) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	conn, stop, err := dialUDP(ctx, target)
	if err != nil {
		return fail(ctx, start, err)
	}
	defer conn.Close()
	defer stop()
	local := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	callID := randHex(16) + "@director"
	req := sipOptions(target, local, callID, randHex(16), randHex(8))
	deadline, _ := ctx.Deadline()
	buf := make([]byte, maxRead)
	var last error // why the last datagram was skipped
	for resend := time.Now(); ; {
		if !time.Now().Before(resend) {
			if _, err := conn.Write(req); err != nil {
				return fail(ctx, start, udpError("sip OPTIONS", err))
			}
			resend = time.Now().Add(sipT1)
			wait := resend
			if !deadline.IsZero() && deadline.Before(wait) {
				wait = deadline
			}
			_ = conn.SetReadDeadline(wait)
			if ctx.Err() != nil {
				// Cancelled meanwhile: bound's wake-up may have been
				// overwritten.
				_ = conn.SetReadDeadline(time.Unix(1, 0))
			}
		}
		n, err := conn.Read(buf)
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() == nil && (deadline.IsZero() || time.Now().Before(deadline)) {
			continue // time to send again
		}
		if err != nil {
			if last != nil {
				err = fmt.Errorf("%w (last datagram skipped: %w)", err, last)
			}
			return fail(ctx, start, udpError("sip OPTIONS: no final response", err))
		}
		resp, err := parseSIPResponse(buf[:n])
		switch {
		case err != nil:
			last = err
		case resp.CallID != callID || resp.CSeq != 1 || resp.Method != "OPTIONS":
			last = fmt.Errorf("a response to another request (Call-ID %s, CSeq %d %s)", clipText(resp.CallID), resp.CSeq, clipText(resp.Method))
		case resp.Status < 200:
			last = fmt.Errorf("provisional response %d", resp.Status)
		default:
			return ok(start)
		}
	}
}

// sipOptions renders the request: addresses in URIs without their IPv6
// zone, which has no place there.
func sipOptions(target, local netip.AddrPort, callID, branch, tag string) []byte {
	host := func(ap netip.AddrPort) string {
		return netip.AddrPortFrom(ap.Addr().WithZone("").Unmap(), ap.Port()).String()
	}
	t, l := host(target), host(local)
	var b bytes.Buffer
	fmt.Fprintf(&b, "OPTIONS sip:%s SIP/2.0\r\n", t)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK%s;rport\r\n", l, branch)
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "To: <sip:%s>\r\n", t)
	fmt.Fprintf(&b, "From: <sip:director@%s>;tag=%s\r\n", l, tag)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", callID)
	b.WriteString("CSeq: 1 OPTIONS\r\n")
	fmt.Fprintf(&b, "Contact: <sip:director@%s>\r\n", l)
	b.WriteString("Accept: application/sdp\r\nUser-Agent: director\r\nContent-Length: 0\r\n\r\n")
	return b.Bytes()
}

func randHex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[rand.IntN(len(digits))]
	}
	return string(b)
}

// sipResponse is what a probe needs of a response.
type sipResponse struct {
	Status int
	CallID string
	CSeq   uint32
	Method string
}

// maxSIPHeaders bounds the header lines looked at; a response to OPTIONS
// has a dozen or two.
const maxSIPHeaders = 200

// parseSIPResponse reads the status line and the Call-ID and CSeq headers
// of a response datagram (RFC 3261 section 7), leniently where servers
// differ (bare LF line ends, folded lines, compact header names) and
// strictly where a wrong answer could pass (one Call-ID, one CSeq).
func parseSIPResponse(b []byte) (sipResponse, error) {
	var r sipResponse
	head, _, _ := bytes.Cut(b, []byte("\r\n\r\n"))
	lines := strings.Split(strings.ReplaceAll(string(head), "\r\n", "\n"), "\n")
	if len(lines) > maxSIPHeaders {
		return r, fmt.Errorf("%w: more than %d header lines", ErrSIPResponse, maxSIPHeaders)
	}
	for _, l := range lines {
		// A CR that does not end a line has no place in a response.
		if strings.IndexByte(l, '\r') >= 0 {
			return r, fmt.Errorf("%w: a CR inside a line: %s", ErrSIPResponse, clipText(l))
		}
	}
	version, rest, _ := strings.Cut(lines[0], " ")
	code, _, _ := strings.Cut(rest, " ")
	if !strings.EqualFold(version, "SIP/2.0") {
		return r, fmt.Errorf("%w: status line %s", ErrSIPResponse, clipText(lines[0]))
	}
	st, err := strconv.Atoi(code)
	if err != nil || len(code) != 3 || st < 100 || st > 699 {
		return r, fmt.Errorf("%w: status code %s", ErrSIPResponse, clipText(code))
	}
	r.Status = st
	// Unfold: a line starting with white space continues the previous.
	var fields []string
	for _, l := range lines[1:] {
		if l == "" {
			break // the end of the headers, if only LF was used
		}
		if l[0] == ' ' || l[0] == '\t' {
			if len(fields) == 0 {
				return r, fmt.Errorf("%w: continuation line before any header", ErrSIPResponse)
			}
			fields[len(fields)-1] += " " + strings.TrimSpace(l)
			continue
		}
		fields = append(fields, l)
	}
	var haveID, haveCSeq bool
	for _, f := range fields {
		name, value, found := strings.Cut(f, ":")
		if !found {
			return r, fmt.Errorf("%w: header line without a colon: %s", ErrSIPResponse, clipText(f))
		}
		name, value = strings.TrimSpace(name), strings.TrimSpace(value)
		switch {
		case strings.EqualFold(name, "Call-ID") || strings.EqualFold(name, "i"):
			if haveID {
				return r, fmt.Errorf("%w: two Call-ID headers", ErrSIPResponse)
			}
			haveID, r.CallID = true, value
		case strings.EqualFold(name, "CSeq"):
			if haveCSeq {
				return r, fmt.Errorf("%w: two CSeq headers", ErrSIPResponse)
			}
			num, method, _ := strings.Cut(value, " ")
			n, err := strconv.ParseUint(num, 10, 32)
			if err != nil {
				return r, fmt.Errorf("%w: CSeq %s", ErrSIPResponse, clipText(value))
			}
			haveCSeq, r.CSeq, r.Method = true, uint32(n), strings.TrimSpace(method)
		}
	}
	if !haveID || !haveCSeq {
		return r, fmt.Errorf("%w: no Call-ID or no CSeq", ErrSIPResponse)
	}
	return r, nil
}

// clipText quotes what a peer sent, short and printable, for an error.
func clipText(s string) string {
	if len(s) > 64 {
		s = s[:64] + "..."
	}
	return strconv.QuoteToASCII(s)
}
