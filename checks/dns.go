package checks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNS asks the target one question and judges the answer. The question
// goes over UDP, and over TCP when the answer is truncated, as resolvers
// do.
type DNS struct {
	Name string // the question's name, e.g. "example.com."
	Type string // the record type, e.g. "A" (default), "AAAA", "SOA"
	// Rcode is the expected response code (default NOERROR).
	Rcode string
	// Answer, if set, must appear in one answer record's text (an
	// address, a name): a server answering with stale data is unhealthy.
	Answer string
}

// ErrDNSAnswer is a response that is not what the check expects.
var ErrDNSAnswer = errors.New("unexpected DNS answer")

func (d DNS) question() (*dns.Msg, error) {
	qtype := dns.TypeA
	if d.Type != "" {
		t, ok := dns.StringToType[strings.ToUpper(d.Type)]
		if !ok {
			return nil, fmt.Errorf("unknown DNS record type %q", d.Type)
		}
		qtype = t
	}
	name := d.Name
	if name == "" {
		name = "."
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	m.RecursionDesired = false
	return m, nil
}

// Probe implements Prober.
func (d DNS) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	q, err := d.question()
	if err != nil {
		return fail(ctx, start, err)
	}
	wantRcode := dns.RcodeSuccess
	if d.Rcode != "" {
		rc, ok := dns.StringToRcode[strings.ToUpper(d.Rcode)]
		if !ok {
			return fail(ctx, start, fmt.Errorf("unknown DNS rcode %q", d.Rcode))
		}
		wantRcode = rc
	}
	addr := target.String()
	c := &dns.Client{Net: "udp"}
	resp, _, err := c.ExchangeContext(ctx, q, addr)
	if err == nil && resp.Truncated {
		resp, _, err = (&dns.Client{Net: "tcp"}).ExchangeContext(ctx, q, addr)
	}
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() != nil {
			err = ctx.Err()
		}
		return fail(ctx, start, fmt.Errorf("dns %s %s: %w", dns.TypeToString[q.Question[0].Qtype], q.Question[0].Name, err))
	}
	if resp.Rcode != wantRcode {
		return fail(ctx, start, fmt.Errorf("%w: rcode %s, want %s", ErrDNSAnswer, dns.RcodeToString[resp.Rcode], dns.RcodeToString[wantRcode]))
	}
	if d.Answer != "" {
		for _, rr := range resp.Answer {
			if strings.Contains(rr.String(), d.Answer) {
				return ok(start)
			}
		}
		return fail(ctx, start, fmt.Errorf("%w: no answer record contains %q (%d records)", ErrDNSAnswer, d.Answer, len(resp.Answer)))
	}
	return ok(start)
}
