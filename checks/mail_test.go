package checks

import (
	"bufio"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The smtp and banner checks are tested against small SMTP, FTP, POP3,
// IMAP and NNTP responders written here, on loopback: each answers a
// greeting and then one reply per command line, as a script says. They
// speak just enough of each protocol for the check; the lab test
// (e2e/checks_banner_test.go) drives directord's weights with them too.

// script answers one command line; close ends the conversation.
type script func(line string) (reply string, close bool)

// responder serves greeting then script on every connection, and records
// the lines it received.
type responder struct {
	t     *testing.T
	ln    net.Listener
	mu    sync.Mutex
	lines []string
}

func respond(t *testing.T, greeting string, s script) (*responder, netip.AddrPort) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &responder{t: t, ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte(greeting)); err != nil {
					return
				}
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil {
						return
					}
					l = strings.TrimRight(l, "\r\n")
					r.mu.Lock()
					r.lines = append(r.lines, l)
					r.mu.Unlock()
					reply, done := s(l)
					if _, err := c.Write([]byte(reply)); err != nil || done {
						return
					}
				}
			}()
		}
	}()
	return r, netip.MustParseAddrPort(ln.Addr().String())
}

func (r *responder) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.lines...)
}

// The responders. A login is alice with the password s3cret; for imap the
// password arrives as a quoted string.
func smtpScript(line string) (string, bool) {
	switch {
	case strings.HasPrefix(line, "EHLO "):
		return "250-mail.example.com greets you\r\n250-PIPELINING\r\n250 8BITMIME\r\n", false
	case line == "QUIT":
		return "221 2.0.0 bye\r\n", true
	}
	return "502 5.5.2 what?\r\n", false
}

func ftpScript(line string) (string, bool) {
	switch line {
	case "USER alice":
		return "331 password please\r\n", false
	case "USER anonymous":
		return "230 in without a password\r\n", false
	case "PASS s3cret":
		return "230 logged in\r\n", false
	case "QUIT":
		return "221 bye\r\n", true
	}
	if strings.HasPrefix(line, "PASS ") {
		return "530 login incorrect\r\n", false
	}
	return "500 what?\r\n", false
}

func pop3Script(line string) (string, bool) {
	switch line {
	case "USER alice":
		return "+OK send PASS\r\n", false
	case "PASS s3cret":
		return "+OK maildrop has 0 messages\r\n", false
	case "QUIT":
		return "+OK bye\r\n", true
	}
	return "-ERR no\r\n", false
}

func imapScript(line string) (string, bool) {
	switch line {
	case `a1 LOGIN "alice" "s3cret"`, `a1 LOGIN "alice" "s3\"c\\ret"`:
		return "* CAPABILITY IMAP4rev1 IDLE\r\na1 OK LOGIN completed\r\n", false
	case "a2 LOGOUT":
		return "* BYE logging out\r\na2 OK LOGOUT completed\r\n", true
	}
	tag, _, _ := strings.Cut(line, " ")
	return tag + " NO [AUTHENTICATIONFAILED] invalid credentials\r\n", false
}

func nntpScript(line string) (string, bool) {
	switch line {
	case "AUTHINFO USER alice":
		return "381 password required\r\n", false
	case "AUTHINFO PASS s3cret":
		return "281 authentication accepted\r\n", false
	case "QUIT":
		return "205 bye\r\n", true
	}
	if strings.HasPrefix(line, "AUTHINFO PASS ") {
		return "481 authentication failed\r\n", false
	}
	return "500 what?\r\n", false
}

func TestSMTP(t *testing.T) {
	good, goodAt := respond(t, "220-mail.example.com ESMTP\r\n220 no UCE\r\n", smtpScript)
	_, busyAt := respond(t, "554 5.3.2 too busy\r\n", smtpScript)
	_, noEHLOAt := respond(t, "220 old.example.com SMTP\r\n", func(l string) (string, bool) { return "500 5.5.1 unknown\r\n", false })
	// One endless line, more than a probe reads: the probe stops at the
	// bound, not at its timeout.
	_, floodAt := respond(t, "220 "+strings.Repeat("x", maxRead+10), smtpScript)
	_, silentAt := respond(t, "", smtpScript)

	tests := []struct {
		name    string
		p       SMTP
		target  netip.AddrPort
		errLike string // "" means healthy
	}{
		{"multi-line greeting and EHLO", SMTP{HeloName: "lb1.example.com"}, goodAt, ""},
		{"554 greeting", SMTP{}, busyAt, "greeting: unexpected reply: 554"},
		{"EHLO refused", SMTP{}, noEHLOAt, "EHLO: unexpected reply: 500"},
		{"endless line", SMTP{}, floodAt, "greeting: EOF"},
		{"silent", SMTP{}, silentAt, "deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 2 * time.Second
			if tt.name == "silent" {
				timeout = 200 * time.Millisecond
			}
			r := probeWithin(t, tt.p, tt.target, timeout)
			wantResult(t, r, tt.errLike)
			if tt.name == "endless line" && r.Latency > time.Second {
				t.Errorf("took %v: the read bound should end it, not the timeout", r.Latency)
			}
		})
	}
	if got, want := good.received(), []string{"EHLO lb1.example.com", "QUIT"}; strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("server received %q, want %q", got, want)
	}
	if h := helo(""); h == "" || strings.ContainsAny(h, " \r\n") {
		t.Errorf("default EHLO name %q", h)
	}
}

func wantResult(t *testing.T, r Result, errLike string) {
	t.Helper()
	switch {
	case errLike == "" && !r.OK:
		t.Fatalf("failed: %v", r.Err)
	case errLike != "" && r.OK:
		t.Fatalf("healthy, want an error like %q", errLike)
	case errLike != "" && !strings.Contains(r.Err.Error(), errLike):
		t.Fatalf("error %q, want it to contain %q", r.Err, errLike)
	}
}

func TestBanner(t *testing.T) {
	type server struct {
		greeting string
		s        script
	}
	servers := map[string]server{
		"ftp":  {"220-Welcome\r\n220 FTP ready\r\n", ftpScript},
		"pop3": {"+OK POP3 ready <1.2@example.com>\r\n", pop3Script},
		"imap": {"* OK [CAPABILITY IMAP4rev1] ready\r\n", imapScript},
		"nntp": {"200 news.example.com ready, posting ok\r\n", nntpScript},
	}
	// Greetings each protocol must refuse.
	refused := map[string]string{
		"ftp":  "421 too many users\r\n",
		"pop3": "-ERR go away\r\n",
		"imap": "* BYE too busy\r\n",
		"nntp": "502 permission denied\r\n",
	}
	login := func(user, pass string) SQLOptions { return SQLOptions{User: user, Password: NewSecret(pass)} }
	for proto, srv := range servers {
		t.Run(proto, func(t *testing.T) {
			good, at := respond(t, srv.greeting, srv.s)
			_, badAt := respond(t, refused[proto], srv.s)
			tests := []struct {
				name    string
				login   SQLOptions
				target  netip.AddrPort
				errLike string
			}{
				{"greeting", SQLOptions{}, at, ""},
				{"login", login("alice", "s3cret"), at, ""},
				{"wrong password", login("alice", "wrong-pw"), at, "unexpected reply"},
				{"refused greeting", SQLOptions{}, badAt, "greeting: unexpected reply"},
				{"password with a line break", login("alice", "s3cret\r\nQUIT"), at, "a line break or NUL"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					r := probeWithin(t, Banner{BannerOptions{Protocol: proto, Login: tt.login}}, tt.target, 2*time.Second)
					wantResult(t, r, tt.errLike)
					if r.Err != nil && tt.login.Password.Value() != "" && strings.Contains(r.Err.Error(), tt.login.Password.Value()) {
						t.Errorf("the error shows the password: %v", r.Err)
					}
				})
			}
			// Every conversation ended with the protocol's goodbye.
			last := good.received()
			if len(last) == 0 || !strings.Contains(last[len(last)-1], map[string]string{"ftp": "QUIT", "pop3": "QUIT", "imap": "LOGOUT", "nntp": "QUIT"}[proto]) {
				t.Errorf("the server's last line is not a quit: %q", last)
			}
		})
	}

	t.Run("ftp user without password", func(t *testing.T) {
		_, at := respond(t, "220 ready\r\n", ftpScript)
		wantResult(t, probeWithin(t, Banner{BannerOptions{Protocol: "ftp", Login: login("anonymous", "")}}, at, 2*time.Second), "")
	})
	t.Run("imap quoting", func(t *testing.T) {
		_, at := respond(t, "* OK ready\r\n", imapScript)
		wantResult(t, probeWithin(t, Banner{BannerOptions{Protocol: "imap", Login: login("alice", `s3"c\ret`)}}, at, 2*time.Second), "")
	})
	t.Run("imap preauth", func(t *testing.T) {
		srv, at := respond(t, "* PREAUTH welcome\r\n", imapScript)
		wantResult(t, probeWithin(t, Banner{BannerOptions{Protocol: "imap", Login: login("alice", "s3cret")}}, at, 2*time.Second), "")
		if got := srv.received(); len(got) != 1 || got[0] != "a2 LOGOUT" {
			t.Errorf("a preauthenticated session was sent %q, want only the logout", got)
		}
	})
	t.Run("nntp 201", func(t *testing.T) {
		_, at := respond(t, "201 ready, no posting\r\n", nntpScript)
		wantResult(t, probeWithin(t, Banner{BannerOptions{Protocol: "nntp"}}, at, 2*time.Second), "")
	})
	t.Run("password not loaded", func(t *testing.T) {
		_, at := respond(t, "+OK\r\n", pop3Script)
		r := probeWithin(t, Banner{BannerOptions{Protocol: "pop3", Login: SQLOptions{User: "alice", PasswordFile: "/nonexistent"}}}, at, 2*time.Second)
		wantResult(t, r, "was not loaded")
	})
	t.Run("connection refused", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		at := netip.MustParseAddrPort(ln.Addr().String())
		ln.Close()
		r := probeWithin(t, Banner{BannerOptions{Protocol: "ftp"}}, at, 2*time.Second)
		if r.OK || !errors.Is(r.Err, syscall.ECONNREFUSED) {
			t.Fatalf("got %+v, want a connect failure", r)
		}
	})
}
