package checks

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/textproto"
	"os"
	"strings"
	"time"
)

// The smtp and banner checks talk a line protocol: greeting, an optional
// exchange, and a polite quit. Replies are parsed by net/textproto over a
// reader bounded to maxRead bytes per probe, so a server that streams one
// endless line or a thousand continuation lines cannot make the director
// buffer without limit, and every read ends at the probe's deadline.

// SMTP reads the 220 greeting, sends EHLO and expects 250, then QUITs.
// Multi-line replies ("220-...", "250-...") are read whole.
type SMTP struct {
	// HeloName is sent with EHLO; "" means the host name, or "director".
	HeloName string
}

// BannerOptions configure a banner check.
type BannerOptions struct {
	Protocol string // ftp, pop3, imap, nntp
	// Login, if its User is set, logs in with the protocol's commands;
	// the password is loaded as mysql's is (LoadPassword).
	Login SQLOptions
}

// Banner reads the greeting of an FTP, POP3, IMAP or NNTP server, logs in
// if a user is set, and quits.
type Banner struct{ BannerOptions }

// ErrReply is a reply that is not the one the protocol calls for.
var ErrReply = errors.New("unexpected reply")

// errUnsendable is a command the check refuses to send: a user or
// password with a line break would be a second command.
var errUnsendable = errors.New("a line break or NUL in the command")

// quitLines are the goodbyes, sent after the check whatever its outcome
// while the server is still talking.
var quitLines = map[string]string{"smtp": "QUIT", "ftp": "QUIT", "pop3": "QUIT", "imap": "a2 LOGOUT", "nntp": "QUIT"}

// polite says whether the conversation can still end with a goodbye: it
// succeeded, or the server answered something else than wanted.
func polite(err error) bool {
	return err == nil || errors.Is(err, ErrReply) || errors.Is(err, errUnsendable)
}

// lineConn is one probe's conversation.
type lineConn struct {
	r *textproto.Reader
	w *bufio.Writer
}

func dialLines(ctx context.Context, target netip.AddrPort) (*os.File, func() bool, *lineConn, error) {
	deadline, _ := ctx.Deadline()
	conn, stop, err := connect(ctx, deadline, target)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("connect: %w", err)
	}
	lc := &lineConn{
		r: textproto.NewReader(bufio.NewReader(io.LimitReader(conn, maxRead))),
		w: bufio.NewWriter(conn),
	}
	return conn, stop, lc, nil
}

// cmd sends one command line. what names it in errors, so that a password
// in the line never shows.
func (c *lineConn) cmd(what, line string) error {
	if strings.ContainsAny(line, "\r\n\x00") {
		return fmt.Errorf("%s: %w", what, errUnsendable)
	}
	if _, err := c.w.WriteString(line + "\r\n"); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if err := c.w.Flush(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// reply reads a numbered reply (SMTP, FTP, NNTP), multi-line ones whole,
// and wants one of codes.
func (c *lineConn) reply(what string, codes ...int) (int, error) {
	code, msg, err := c.r.ReadResponse(0)
	if err != nil {
		var perr textproto.ProtocolError
		if errors.As(err, &perr) {
			return 0, fmt.Errorf("%s: %w: %s", what, ErrReply, clipLine(string(perr)))
		}
		return 0, fmt.Errorf("%s: %w", what, err)
	}
	for _, want := range codes {
		if code == want {
			return code, nil
		}
	}
	return code, fmt.Errorf("%s: %w: %d %s", what, ErrReply, code, clipLine(msg))
}

// line reads one line and wants it to start with prefix (case-insensitive:
// POP3's +OK and IMAP's OK are matched as servers write them, and both
// RFCs make the status words case-insensitive).
func (c *lineConn) line(what string, prefixes ...string) (string, error) {
	l, err := c.r.ReadLine()
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	for _, p := range prefixes {
		if len(l) >= len(p) && strings.EqualFold(l[:len(p)], p) {
			return l, nil
		}
	}
	return l, fmt.Errorf("%s: %w: %s", what, ErrReply, clipLine(l))
}

// quit says goodbye and waits, within the probe's deadline, for the one
// line of the server's answer, so that the server closes first; what it
// answers does not change the outcome.
func (c *lineConn) quit(line string) {
	if c.cmd("quit", line) == nil {
		_, _ = c.r.ReadLine()
	}
}

func clipLine(s string) string {
	const n = 120
	if len(s) > n {
		return fmt.Sprintf("%q...", s[:n])
	}
	return fmt.Sprintf("%q", s)
}

// helo is the EHLO name: the configured one, else the host name (its
// first label would not do: EHLO wants the full name), else "director".
func helo(name string) string {
	if name != "" {
		return name
	}
	if h, err := os.Hostname(); err == nil && h != "" && !strings.ContainsAny(h, " \t\r\n") {
		return h
	}
	return "director"
}

// Probe implements Prober.
func (s SMTP) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	conn, stop, c, err := dialLines(ctx, target)
	if err != nil {
		return fail(ctx, start, err)
	}
	defer stop()
	defer conn.Close()
	err = smtp(c, helo(s.HeloName))
	if polite(err) {
		c.quit(quitLines["smtp"])
	}
	if err != nil {
		return fail(ctx, start, err)
	}
	return ok(start)
}

// smtp: 220 greeting, EHLO 250 (RFC 5321).
func smtp(c *lineConn, name string) error {
	if _, err := c.reply("greeting", 220); err != nil {
		return err
	}
	if err := c.cmd("EHLO", "EHLO "+name); err != nil {
		return err
	}
	_, err := c.reply("EHLO", 250)
	return err
}

// Probe implements Prober.
func (b Banner) Probe(ctx context.Context, target netip.AddrPort) Result {
	start := time.Now()
	pass, err := b.Login.password()
	if err != nil {
		return fail(ctx, start, err)
	}
	conn, stop, c, err := dialLines(ctx, target)
	if err != nil {
		return fail(ctx, start, err)
	}
	defer stop()
	defer conn.Close()
	user := b.Login.User
	switch b.Protocol {
	case "ftp":
		err = ftp(c, user, pass)
	case "pop3":
		err = pop3(c, user, pass)
	case "imap":
		err = imap(c, user, pass)
	case "nntp":
		err = nntp(c, user, pass)
	default:
		err = fmt.Errorf("banner check: protocol %q is not one of ftp, pop3, imap, nntp", b.Protocol)
	}
	if polite(err) {
		c.quit(quitLines[b.Protocol])
	}
	if err != nil {
		return fail(ctx, start, err)
	}
	return ok(start)
}

// ftp: 220 greeting; USER (331, or 230 for a user without password), PASS
// 230 (RFC 959).
func ftp(c *lineConn, user, pass string) error {
	if _, err := c.reply("greeting", 220); err != nil {
		return err
	}
	if user != "" {
		if err := c.cmd("USER", "USER "+user); err != nil {
			return err
		}
		code, err := c.reply("USER", 230, 331)
		if err != nil {
			return err
		}
		if code == 331 {
			if err := c.cmd("PASS", "PASS "+pass); err != nil {
				return err
			}
			if _, err := c.reply("PASS", 230, 202); err != nil {
				return err
			}
		}
	}
	return nil
}

// pop3: +OK greeting; USER +OK, PASS +OK (RFC 1939).
func pop3(c *lineConn, user, pass string) error {
	if _, err := c.line("greeting", "+OK"); err != nil {
		return err
	}
	if user != "" {
		if err := c.cmd("USER", "USER "+user); err != nil {
			return err
		}
		if _, err := c.line("USER", "+OK"); err != nil {
			return err
		}
		if err := c.cmd("PASS", "PASS "+pass); err != nil {
			return err
		}
		if _, err := c.line("PASS", "+OK"); err != nil {
			return err
		}
	}
	return nil
}

// imap: "* OK" greeting ("* PREAUTH": already logged in); a1 LOGIN with
// quoted strings, answered "a1 OK" after any untagged lines (RFC 9051).
func imap(c *lineConn, user, pass string) error {
	g, err := c.line("greeting", "* OK", "* PREAUTH")
	if err != nil {
		return err
	}
	if user != "" && !strings.HasPrefix(strings.ToUpper(g), "* PREAUTH") {
		if err := c.cmd("LOGIN", "a1 LOGIN "+imapQuote(user)+" "+imapQuote(pass)); err != nil {
			return err
		}
		for {
			l, err := c.line("LOGIN", "* ", "a1 ")
			if err != nil {
				return err
			}
			if strings.HasPrefix(l, "* ") {
				continue // CAPABILITY and the like, before the tagged answer
			}
			if len(l) < 5 || !strings.EqualFold(l[3:5], "OK") {
				return fmt.Errorf("LOGIN: %w: %s", ErrReply, clipLine(l))
			}
			break
		}
	}
	return nil
}

// imapQuote writes s as an IMAP quoted string.
func imapQuote(s string) string {
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s) + `"`
}

// nntp: 200 or 201 greeting; AUTHINFO USER (381, or 281), AUTHINFO PASS
// 281 (RFC 4643).
func nntp(c *lineConn, user, pass string) error {
	if _, err := c.reply("greeting", 200, 201); err != nil {
		return err
	}
	if user != "" {
		if err := c.cmd("AUTHINFO USER", "AUTHINFO USER "+user); err != nil {
			return err
		}
		code, err := c.reply("AUTHINFO USER", 281, 381)
		if err != nil {
			return err
		}
		if code == 381 {
			if err := c.cmd("AUTHINFO PASS", "AUTHINFO PASS "+pass); err != nil {
				return err
			}
			if _, err := c.reply("AUTHINFO PASS", 281); err != nil {
				return err
			}
		}
	}
	return nil
}
