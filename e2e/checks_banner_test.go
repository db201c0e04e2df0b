//go:build lab

package e2e

import (
	"bufio"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/directorlb/director/lab/topo"
)

// serveLines runs a small line-protocol server inside h (no Debian mail
// or news server is needed: these checks speak only a greeting, a login
// and a goodbye, which this reproduces): greeting on connect, then one
// answer per line from reply, until stop, which closes the listener and
// every connection, as a server that dies would.
func serveLines(t *testing.T, h *topo.Host, addr, greeting string, reply func(line string) (string, bool)) (stop func()) {
	t.Helper()
	l, err := h.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			go func() {
				defer func() {
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
					c.Close()
				}()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write([]byte(greeting)); err != nil {
					return
				}
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					out, last := reply(strings.TrimRight(line, "\r\n"))
					if _, err := c.Write([]byte(out)); err != nil || last {
						return
					}
				}
			}()
		}
	}()
	stop = sync.OnceFunc(func() {
		l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for c := range conns {
			c.Close()
		}
	})
	t.Cleanup(stop)
	return stop
}

func smtpReply(line string) (string, bool) {
	switch {
	case strings.HasPrefix(line, "EHLO "):
		return "250-mx greets " + strings.TrimPrefix(line, "EHLO ") + "\r\n250 8BITMIME\r\n", false
	case line == "QUIT":
		return "221 bye\r\n", true
	}
	return "502 what?\r\n", false
}

// TestCheckSMTP: an smtp check drives a real server's weight in the
// kernel: responder up, the configured weight; down, 0; back, again.
func TestCheckSMTP(t *testing.T) {
	t.Parallel()
	_, _, dir, rs1, rs2 := natFarm(t)
	stop1 := serveLines(t, rs1, ":25", "220-mx1 ESMTP\r\n220 ready\r\n", smtpReply)
	serveLines(t, rs2, ":25", "220 mx2 ESMTP\r\n", smtpReply)
	runDirectord(t, dir, `
services:
  - name: mail
    vip: 192.0.2.10
    port: 25
    check: {type: smtp, helo_name: lb.example.com, interval: 200ms, timeout: 150ms, rise: 2, fall: 2}
    real_servers:
      - {address: 10.0.1.11, weight: 5}
      - {address: 10.0.2.12, weight: 5}
`)
	waitKernel(t, dir, "-r 10.0.1.11:25 -m -w 5", 5*time.Second)
	waitKernel(t, dir, "-r 10.0.2.12:25 -m -w 5", 5*time.Second)
	stop1()
	waitKernel(t, dir, "-r 10.0.1.11:25 -m -w 0", 5*time.Second)
	if !strings.Contains(ipvsadmSave(t, dir), "-r 10.0.2.12:25 -m -w 5") {
		t.Fatalf("the healthy server lost its weight:\n%s", ipvsadmSave(t, dir))
	}
	serveLines(t, rs1, ":25", "220 mx1 back\r\n", smtpReply)
	waitKernel(t, dir, "-r 10.0.1.11:25 -m -w 5", 5*time.Second)
}

// TestCheckBanner: a pop3 banner check with a login (password in a file)
// drives a real server's weight; a refused password takes it out as a
// dead server does.
func TestCheckBanner(t *testing.T) {
	t.Parallel()
	_, _, dir, rs1, rs2 := natFarm(t)
	pop3 := func(password string) func(string) (string, bool) {
		return func(line string) (string, bool) {
			switch line {
			case "USER monitor":
				return "+OK\r\n", false
			case "PASS " + password:
				return "+OK logged in\r\n", false
			case "QUIT":
				return "+OK bye\r\n", true
			}
			return "-ERR no\r\n", false
		}
	}
	stop1 := serveLines(t, rs1, ":110", "+OK POP3 rs1 ready\r\n", pop3("s3cret"))
	serveLines(t, rs2, ":110", "+OK POP3 rs2 ready\r\n", pop3("other"))
	tmp := t.TempDir()
	pw := filepath.Join(tmp, "pop3.pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runDirectord(t, dir, `
services:
  - name: pop
    vip: 192.0.2.10
    port: 110
    check: {type: banner, protocol: pop3, user: monitor, password_file: `+pw+`, interval: 200ms, timeout: 150ms, rise: 2, fall: 2}
    real_servers:
      - {address: 10.0.1.11, weight: 3}
      - {address: 10.0.2.12, weight: 3}
`)
	waitKernel(t, dir, "-r 10.0.1.11:110 -m -w 3", 5*time.Second)
	// rs2 refuses the password: it never enters.
	time.Sleep(time.Second)
	if save := ipvsadmSave(t, dir); !strings.Contains(save, "-r 10.0.2.12:110 -m -w 0") {
		t.Fatalf("a server refusing the login is not at weight 0:\n%s", save)
	}
	stop1()
	waitKernel(t, dir, "-r 10.0.1.11:110 -m -w 0", 5*time.Second)
	serveLines(t, rs1, ":110", "+OK POP3 rs1 back\r\n", pop3("s3cret"))
	waitKernel(t, dir, "-r 10.0.1.11:110 -m -w 3", 5*time.Second)
}
