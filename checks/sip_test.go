package checks

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

var (
	sipCallID = regexp.MustCompile(`(?m)^Call-ID: (.*)\r$`)
	sipCSeq   = regexp.MustCompile(`(?m)^CSeq: (.*)\r$`)
	sipVia    = regexp.MustCompile(`(?m)^Via: (.*)\r$`)
)

// sipResponder is a tiny SIP UAS: it answers an OPTIONS request with the
// status lines given (each a response, in order), echoing the request's
// Via, Call-ID and CSeq unless callID overrides the Call-ID. It ignores
// the first drop requests it receives.
func sipResponder(t *testing.T, addr string, drop int32, callID string, statuses ...string) func() int32 {
	t.Helper()
	var seen atomic.Int32
	target := udpServer(t, addr, func(req []byte) []byte {
		n := seen.Add(1)
		if n <= drop || !strings.HasPrefix(string(req), "OPTIONS sip:") {
			return nil
		}
		id, cseq, via := sipCallID.FindSubmatch(req), sipCSeq.FindSubmatch(req), sipVia.FindSubmatch(req)
		if id == nil || cseq == nil || via == nil {
			t.Errorf("request without Call-ID, CSeq or Via:\n%s", req)
			return nil
		}
		cid := string(id[1])
		if callID != "" {
			cid = callID
		}
		var out []byte
		for _, st := range statuses {
			// Several responses in one datagram are not SIP; the
			// prober must judge the first and its headers only.
			out = fmt.Appendf(out, "SIP/2.0 %s\r\nVia: %s\r\nFrom: <sip:director@x>;tag=1\r\nTo: <sip:x>;tag=2\r\nCall-ID: %s\r\nCSeq: %s\r\nContent-Length: 0\r\n\r\n",
				st, via[1], cid, cseq[1])
			break
		}
		return out
	})
	sipTargets[t.Name()] = target.String()
	return func() int32 { return seen.Load() }
}

func mustAddrPort(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

func mustAddrPortF(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// sipTargets hands a test its responder's address (tests are not parallel).
var sipTargets = map[string]string{}

func TestSIP(t *testing.T) {
	for _, loop := range []string{"127.0.0.1:0", "[::1]:0"} {
		t.Run(loop, func(t *testing.T) {
			tests := []struct {
				name     string
				drop     int32
				callID   string
				statuses []string
				timeout  time.Duration
				wantErr  string
				is       error
			}{
				{"200", 0, "", []string{"200 OK"}, 300 * time.Millisecond, "", nil},
				{"busy is alive", 0, "", []string{"486 Busy Here"}, 300 * time.Millisecond, "", nil},
				{"server error is alive", 0, "", []string{"503 Service Unavailable"}, 300 * time.Millisecond, "", nil},
				{"provisional only", 0, "", []string{"100 Trying"}, 300 * time.Millisecond, "provisional response 100", context.DeadlineExceeded},
				{"other Call-ID", 0, "someone-else@x", []string{"200 OK"}, 300 * time.Millisecond, "a response to another request", nil},
				{"garbage", 0, "", []string{"OK"}, 300 * time.Millisecond, "malformed SIP response", nil},
				{"silent", 1 << 30, "", nil, 300 * time.Millisecond, "no final response", context.DeadlineExceeded},
				{"retransmitted", 1, "", []string{"200 OK"}, 1200 * time.Millisecond, "", nil},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					seen := sipResponder(t, loop, tt.drop, tt.callID, tt.statuses...)
					target := mustAddrPort(t, sipTargets[t.Name()])
					r := probeWithin(t, SIP{}, target, tt.timeout)
					checkResult(t, r, tt.wantErr, tt.is)
					if tt.name == "retransmitted" && seen() < 2 {
						t.Errorf("the responder saw %d requests, want a retransmission", seen())
					}
				})
			}
			t.Run("port unreachable", func(t *testing.T) {
				r := probeWithin(t, SIP{}, closedUDPPort(t, loop), 300*time.Millisecond)
				checkResult(t, r, "port unreachable", ErrPortUnreachable)
			})
		})
	}
}

func TestParseSIPResponse(t *testing.T) {
	tests := []struct {
		name, in string
		want     sipResponse
		wantErr  string
	}{
		{"plain", "SIP/2.0 200 OK\r\nCall-ID: abc@h\r\nCSeq: 1 OPTIONS\r\n\r\n", sipResponse{200, "abc@h", 1, "OPTIONS"}, ""},
		{"compact, LF, folded, case", "sip/2.0 404 Not Found\ni:  abc@h \ncseq:\n 7   OPTIONS\nX: y\n\nbody", sipResponse{404, "abc@h", 7, "OPTIONS"}, ""},
		{"no reason", "SIP/2.0 180\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\n", sipResponse{180, "a", 1, "INVITE"}, ""},
		{"request", "OPTIONS sip:x SIP/2.0\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n\r\n", sipResponse{}, "status line"},
		{"HTTP", "HTTP/1.1 200 OK\r\n\r\n", sipResponse{}, "status line"},
		{"code 99", "SIP/2.0 099 x\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n", sipResponse{}, "status code"},
		{"code 700", "SIP/2.0 700 x\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n", sipResponse{}, "status code"},
		{"code +20", "SIP/2.0 +20 x\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\n", sipResponse{}, "status code"},
		{"two Call-IDs", "SIP/2.0 200 OK\r\nCall-ID: a\r\ni: b\r\nCSeq: 1 OPTIONS\r\n", sipResponse{}, "two Call-ID"},
		{"two CSeqs", "SIP/2.0 200 OK\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\nCSeq: 2 OPTIONS\r\n", sipResponse{}, "two CSeq"},
		{"bad CSeq", "SIP/2.0 200 OK\r\nCall-ID: a\r\nCSeq: one OPTIONS\r\n", sipResponse{}, "CSeq"},
		{"no Call-ID", "SIP/2.0 200 OK\r\nCSeq: 1 OPTIONS\r\n", sipResponse{}, "no Call-ID"},
		{"no colon", "SIP/2.0 200 OK\r\nCall-ID a\r\n", sipResponse{}, "without a colon"},
		{"leading continuation", "SIP/2.0 200 OK\r\n Call-ID: a\r\n", sipResponse{}, "continuation"},
		{"empty", "", sipResponse{}, "status line"},
		{"bare CR", "SIP/2.0 100 \nCall-ID:0\r0\nCSeq: 1 OPTIONS\n", sipResponse{}, "a CR inside a line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSIPResponse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrSIPResponse) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func FuzzParseSIPResponse(f *testing.F) {
	f.Add([]byte("SIP/2.0 200 OK\r\nCall-ID: abc@h\r\nCSeq: 1 OPTIONS\r\n\r\n"))
	f.Add([]byte("sip/2.0 404 Not Found\ni: abc\ncseq:\n 7 OPTIONS\n\n"))
	f.Add([]byte("SIP/2.0 100\r\n \r\n:\r\n"))
	f.Add(sipOptions(mustAddrPortF("[fe80::1%eth0]:5060"), mustAddrPortF("10.0.0.1:4000"), "c@d", "b", "t"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := parseSIPResponse(b)
		if err != nil {
			if !errors.Is(err, ErrSIPResponse) {
				t.Fatalf("error %v is not ErrSIPResponse", err)
			}
			return
		}
		if r.Status < 100 || r.Status > 699 {
			t.Fatalf("status %d accepted", r.Status)
		}
		if strings.ContainsAny(r.CallID, "\r\n") || strings.ContainsAny(r.Method, "\r\n") {
			t.Fatalf("a line end inside a header value: %+v", r)
		}
	})
}
