// Package preflight checks what a loaded configuration names on this
// host: the files directord reads (the pair's and the group's key, check
// and BGP passwords, CA bundles), the programs it runs (notify, fence,
// exec checks), the control socket's path and the network interfaces. config.Load judges the file
// alone; these depend on the machine, so they are made here, by
// `directorctl check-config` (systemd's ExecStartPre) and by directord
// before a start or a reload, with the same rules directord applies when it
// uses them. Nothing here blocks: files are opened O_NONBLOCK and refused
// unless regular, programs and devices are only stat'ed.
package preflight

import (
	"bytes"
	"cmp"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/heartbeat"
	"github.com/directorlb/director/rootfile"
	"golang.org/x/sys/unix"
)

// The largest files read, as package checks reads them.
const (
	MaxPasswordFile = 4096    // a password is a line
	MaxCAFile       = 4 << 20 // the whole Mozilla bundle is ~220 KiB
	// MaxMD5Key is the longest TCP MD5 password Linux takes
	// (TCP_MD5SIG_MAXKEYLEN).
	MaxMD5Key = 80
)

// Check returns what is wrong with cfg on this host. errs would make
// directord refuse to start (or fail later, a check or hook that cannot
// run); warnings are for what may be right on the host the file is
// meant for: an interface that does not exist here, a program others
// could rewrite. Each is a *config.Error at the key that names the
// thing, in file order.
func Check(cfg *config.Config) (errs, warnings []error) {
	c := &checker{cfg: cfg, seen: map[string]bool{}}
	c.socket()
	if fo := cfg.Failover; fo != nil {
		c.failover(fo)
	}
	if b := cfg.BGP; b != nil {
		c.bgp(b)
	}
	c.checks()
	return sorted(c.errs), sorted(c.warns)
}

type checker struct {
	cfg         *config.Config
	errs, warns []*config.Error
	seen        map[string]bool // files and programs already judged
}

// at is the problem at key: where the file wrote it, or the top of the
// file for a default the file does not write.
func (c *checker) at(key, format string, args ...any) *config.Error {
	p, ok := c.cfg.Where(key)
	if !ok {
		p = config.Pos{File: c.cfg.Path, Line: 1, Col: 1}
	}
	return &config.Error{Pos: p, Key: key, Msg: fmt.Sprintf(format, args...)}
}

func (c *checker) errorf(key, format string, args ...any) {
	c.errs = append(c.errs, c.at(key, format, args...))
}

func (c *checker) warnf(key, format string, args ...any) {
	c.warns = append(c.warns, c.at(key, format, args...))
}

// once reports whether what (a kind and a path) is judged for the first
// time: a file named by many services is read, and reported, once.
func (c *checker) once(what string) bool {
	if c.seen[what] {
		return false
	}
	c.seen[what] = true
	return true
}

// socket refuses a control socket path holding anything but a socket:
// directord replaces only a stale socket (control.Listen), so it would
// refuse to start.
func (c *checker) socket() {
	path := c.cfg.Control.Socket
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode().Type() == fs.ModeSocket {
		return
	}
	c.errorf("control.socket", "%s exists and is not a socket (mode %s); directord would refuse to replace it: move it away or choose another path",
		path, fi.Mode())
}

func (c *checker) failover(fo *config.Failover) {
	// Exactly what directord's start reads: owner root, no group or
	// other bits, a regular file, the key's length.
	if _, err := heartbeat.ReadAuthKey(fo.AuthKeyFile); err != nil {
		c.errorf("failover.auth_key_file", "%v", err)
	}
	if fo.Notify != "" {
		c.program("failover.notify", fo.Notify)
	}
	if fo.Fence != "" {
		c.program("failover.fence", fo.Fence)
	}
	for i, l := range fo.Links {
		if l.Serial != "" {
			c.serial(fmt.Sprintf("failover.links[%d].serial", i), l.Serial)
		} else {
			c.iface(fmt.Sprintf("failover.links[%d].interface", i), l.Interface)
		}
	}
	for i, v := range fo.VIPs {
		c.iface(fmt.Sprintf("failover.vips[%d].interface", i), v.Interface)
	}
	if fo.Sync != nil {
		c.iface("failover.sync.interface", fo.Sync.Interface)
	}
}

func (c *checker) bgp(b *config.BGP) {
	for i, p := range b.Peers {
		if p.PasswordFile == "" || !c.once("bgp password "+p.PasswordFile) {
			continue
		}
		if _, err := ReadBGPPassword(p.PasswordFile); err != nil {
			c.errorf(fmt.Sprintf("bgp.peers[%d].password_file", i), "%v", err)
		}
	}
	c.iface("bgp.vip_interface", b.VIPInterface)
	if b.Sync != nil {
		c.iface("bgp.sync.interface", b.Sync.Interface)
	}
	if g := b.Group; g != nil {
		// The pair's rules: the group's heartbeats are signed the same way.
		if _, err := heartbeat.ReadAuthKey(g.AuthKeyFile); err != nil {
			c.errorf("bgp.group.auth_key_file", "%v", err)
		}
		for i, l := range g.Links {
			c.iface(fmt.Sprintf("bgp.group.links[%d].interface", i), l.Interface)
		}
	}
}

// ReadBGPPassword reads a BGP peer's TCP MD5 password as directord is to
// read it: a secret file (rootfile.ReadSecret: regular, owned by root, no
// group or other permissions, at most MaxPasswordFile bytes) holding the
// password and at most one trailing newline ("\n" or "\r\n"), which is
// not part of it. The kernel takes 1 to MaxMD5Key bytes.
func ReadBGPPassword(path string) ([]byte, error) {
	b, err := rootfile.ReadSecret(path, MaxPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("password file: %w", err)
	}
	pw := b
	if bytes.HasSuffix(pw, []byte("\n")) {
		pw = bytes.TrimSuffix(pw[:len(pw)-1], []byte("\r"))
	}
	switch {
	case len(pw) == 0:
		return nil, fmt.Errorf("password file %s is empty; write the peer's TCP MD5 password in it, or remove password_file", path)
	case len(pw) > MaxMD5Key:
		return nil, fmt.Errorf("password file %s: a password of %d bytes; TCP MD5 takes at most %d", path, len(pw), MaxMD5Key)
	}
	return pw, nil
}

// checks judges the files and programs the services' checks use: only
// those of the check's own type, since a field of another type may be
// inherited and is then ignored.
func (c *checker) checks() {
	for i, s := range c.cfg.Services {
		ch := s.Check
		switch {
		case ch.Type == config.CheckHTTPS && ch.CAFile != "":
			if key, _, _ := c.cfg.CheckKey(i, "ca_file"); c.once("ca " + ch.CAFile) {
				c.caFile(key, ch.CAFile)
			}
		case (ch.Type == config.CheckMySQL || ch.Type == config.CheckPostgres) && ch.PasswordFile != "":
			if key, _, _ := c.cfg.CheckKey(i, "password_file"); c.once("password " + ch.PasswordFile) {
				if _, err := rootfile.ReadSecret(ch.PasswordFile, MaxPasswordFile); err != nil {
					c.errorf(key, "password file %v", err)
				}
			}
		case ch.Type == config.CheckExec && len(ch.Command) > 0:
			if key, _, _ := c.cfg.CheckKey(i, "command"); c.once("program " + ch.Command[0]) {
				c.program(key, ch.Command[0])
			}
		case ch.Type == config.CheckLDAP || ch.Type == config.CheckRADIUS: // ldap, radius: ldapradius.go
			c.ldapRADIUSFiles(i, ch)
		}
	}
}

// caFile reads a CA bundle as the https check does, and wants at least
// one certificate in it: the check's client cannot be built without.
func (c *checker) caFile(key, path string) {
	b, err := rootfile.ReadPublic(path, MaxCAFile)
	if err != nil {
		c.errorf(key, "ca file %v", err)
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		c.errorf(key, "ca file %s: no PEM certificate in it", path)
	}
}

// program judges a program directord will run, resolved as exec.Command
// resolves it when directord runs it: a name with no "/" through PATH
// (exec.LookPath, with this process's PATH, which under systemd is the
// unit's, as directord's), any other as a path. It must be a regular
// file this user may execute. Since directord runs it as root, one that
// another user could rewrite is a warning: that user would run code as
// root.
func (c *checker) program(key, name string) {
	path := name
	if !strings.Contains(name, "/") {
		p, err := exec.LookPath(name)
		if err != nil {
			c.errorf(key, "%s is not found in PATH (%s); give its absolute path", name, os.Getenv("PATH"))
			return
		}
		path = p
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.errorf(key, "%s does not exist", path)
		return
	case err != nil:
		c.errorf(key, "%v", err)
		return
	case !fi.Mode().IsRegular():
		c.errorf(key, "%s is not a regular file (mode %s); it must be a program", path, fi.Mode())
		return
	case fi.Mode().Perm()&0o111 == 0:
		c.errorf(key, "%s is not executable (mode %04o); run `chmod 0755 %s`", path, fi.Mode().Perm(), path)
		return
	}
	// Root may run any file with an execute bit; another user (a test, a
	// check-config run by hand) only what access(2) allows.
	if err := unix.Access(path, unix.X_OK); err != nil {
		c.errorf(key, "%s is not executable by this user: %v", path, err)
		return
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && (st.Uid != 0 || fi.Mode().Perm()&0o022 != 0) {
		c.warnf(key, "%s is owned by uid %d with mode %04o: whoever can rewrite it runs code as root when directord runs it; run `chown root:root %s && chmod go-w %s`",
			path, st.Uid, fi.Mode().Perm(), path, path)
	}
}

// iface warns about an interface this host does not have: the file may
// be meant for another host, or the interface may come later (a VLAN, a
// bond); directord itself refuses to start without it.
func (c *checker) iface(key, name string) {
	if name == "" {
		return
	}
	if _, err := net.InterfaceByName(name); err != nil {
		c.warnf(key, "there is no interface %s on this host; directord will not start here without it", name)
	}
}

// serial judges a serial link's device: absent is a warning, as for an
// interface (a USB adapter may not be plugged in yet); present but not a
// character device is an error, as directord cannot use it.
func (c *checker) serial(key, path string) {
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		c.warnf(key, "there is no device %s on this host; directord will not start here without it", path)
	case err != nil:
		c.errorf(key, "%v", err)
	case fi.Mode().Type() != fs.ModeDevice|fs.ModeCharDevice:
		c.errorf(key, "%s is not a character device (mode %s); a serial link needs a tty such as /dev/ttyS1", path, fi.Mode())
	}
}

// sorted is es in file order, as config reports its own problems.
func sorted(es []*config.Error) []error {
	slices.SortStableFunc(es, func(a, b *config.Error) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
