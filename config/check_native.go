package config

import (
	"encoding/hex"
	"strings"

	"gopkg.in/yaml.v3"
)

// bannerProtocols are the protocols a banner check speaks: each has its
// own greeting and login (package checks, mail.go).
var bannerProtocols = []string{"ftp", "pop3", "imap", "nntp"}

// heloChars are those of a host name, the only thing an EHLO may carry
// besides an address literal.
const heloChars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-."

// checkNative holds the rules of the smtp, banner and file checks, the
// http digest and exec's weight_from_exit, which the generic ones in check
// do not cover. user, password_file and password_env of a banner check
// are read there, as for mysql.
func (d *decoder) checkNative(n *yaml.Node, f *fields, c *Check, typeOK bool, only func(string, ...CheckType) bool) {
	if only("helo_name", CheckSMTP) {
		if s, ok := d.hostHeader(f.value("helo_name"), f.sub("helo_name"), "a host name to send with EHLO, such as director.example.com", heloChars); ok {
			c.HeloName = s
		}
	}
	if only("protocol", CheckBanner) {
		if s, ok := d.enum(f.value("protocol"), f.sub("protocol"), bannerProtocols); ok {
			c.BannerProtocol = s
		}
	}
	if only("file", CheckFile) {
		v := f.value("file")
		if s, ok := d.text(v, f.sub("file"), "the absolute path of a file holding a number"); ok {
			if strings.HasPrefix(s, "/") {
				c.File = s
				d.mark(f.sub("file"), v)
			} else {
				d.errorf(v, f.sub("file"), "must be the absolute path of a file holding a number, got %s", describe(v))
			}
		}
	}
	if only("digest", CheckHTTP, CheckHTTPS) {
		v := f.value("digest")
		if s, ok := d.text(v, f.sub("digest"), digestWant); ok {
			if dg, ok := parseDigest(s); ok {
				c.Digest = dg
			} else {
				d.errorf(v, f.sub("digest"), "must be %s, got %s", digestWant, describe(v))
			}
		}
	}
	if only("weight_from_exit", CheckExec) {
		if b, ok := d.boolean(f.value("weight_from_exit"), f.sub("weight_from_exit")); ok {
			c.WeightFromExit = b
			if b && d.bgpMode {
				d.warnf(f.value("weight_from_exit"), f.sub("weight_from_exit"), "has no effect in bgp mode: a real server's weight in the kernel is 0 or its configured weight, so that every director's mh table stays the same")
			}
		}
	}
	if !typeOK {
		return
	}
	switch c.Type {
	case CheckBanner:
		if c.BannerProtocol == "" && f.value("type") != nil && f.value("protocol") == nil {
			d.errorf(n, f.sub("protocol"), "missing; a banner check reads the greeting of %s", orList(bannerProtocols))
		}
		if c.User == "" {
			// A password with no user to log in as is a forgotten user.
			for _, k := range []string{"password_file", "password_env"} {
				if f.value(k) != nil {
					d.errorf(f.key(k), f.sub(k), "needs user: a banner check logs in only when user is set")
				}
			}
		}
	case CheckFile:
		if c.File == "" && f.value("type") != nil && f.value("file") == nil {
			d.errorf(n, f.sub("file"), "missing; a file check reads a number from a file, such as file: /run/director/weight/app1")
		}
	case CheckExec:
		// Two readings of one probe's outcome: say which one is meant.
		if c.WeightFromExit && c.DynamicWeight {
			for _, k := range []string{"weight_from_exit", "dynamic_weight"} {
				if f.value(k) != nil {
					d.errorf(f.key(k), f.sub(k), "cannot be used with %s: the weight comes from the exit status (weight_from_exit) or from the first line of output (dynamic_weight), not both", other(k))
					break
				}
			}
		}
	}
}

func other(k string) string {
	if k == "dynamic_weight" {
		return "weight_from_exit"
	}
	return "dynamic_weight"
}

const digestWant = "the MD5 or SHA-256 of the body in hex, written HEX (md5, as keepalived's digest), md5:HEX or sha256:HEX"

// parseDigest reads a body digest into its one written form, "md5:hex" or
// "sha256:hex" in lower case. A bare hex string is an MD5, as keepalived
// writes it (genhash prints it).
func parseDigest(s string) (string, bool) {
	alg, sum, ok := strings.Cut(s, ":")
	if !ok {
		alg, sum = "md5", s
	}
	alg, sum = strings.ToLower(alg), strings.ToLower(sum)
	size := map[string]int{"md5": 16, "sha256": 32}[alg]
	if b, err := hex.DecodeString(sum); size == 0 || err != nil || len(b) != size {
		return "", false
	}
	return alg + ":" + sum, true
}
