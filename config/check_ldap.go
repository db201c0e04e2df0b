package config

import "gopkg.in/yaml.v3"

// ldapTLS are the ways an ldap check may secure its connection: StartTLS
// on the plain port, or TLS from the first byte (ldaps, port 636).
var ldapTLS = []string{"starttls", "ldaps"}

// checkLDAPRADIUS reads the keys of the ldap and radius checks that the
// generic ones in check do not (user and password_file are read there)
// and judges what depends on two keys. n is the check's mapping, where a
// missing key is reported; only is check's guard against a key written
// on a check of another type.
func (d *decoder) checkLDAPRADIUS(n *yaml.Node, f *fields, c *Check, typeOK bool, only func(string, ...CheckType) bool) {
	text := func(name, want string, dst *string, types ...CheckType) {
		if only(name, types...) {
			if s, ok := d.text(f.value(name), f.sub(name), want); ok {
				*dst = s
			}
		}
	}
	text("bind_dn", "the DN the check binds as, such as cn=monitor,dc=example,dc=com", &c.BindDN, CheckLDAP)
	text("base_dn", `the DN of the entry the check reads, such as dc=example,dc=com ("" for the root DSE)`, &c.BaseDN, CheckLDAP)
	if only("tls", CheckLDAP) {
		if s, ok := d.enum(f.value("tls"), f.sub("tls"), ldapTLS); ok {
			c.TLS = s
		}
	}
	text("secret_file", "the path of a file holding the RADIUS shared secret (mode 0600)", &c.SecretFile, CheckRADIUS)
	if v := f.value("secret_file"); v != nil {
		d.mark(f.sub("secret_file"), v)
	}
	if !typeOK {
		return
	}
	switch c.Type {
	case CheckLDAP:
		// TLS settings without TLS are a forgotten tls key, not
		// something to ignore.
		if c.TLS == "" {
			for _, k := range []string{"server_name", "ca_file", "insecure_skip_verify"} {
				if f.value(k) != nil {
					d.errorf(f.key(k), f.sub(k), "means nothing to an ldap check without tls; add tls: starttls or tls: ldaps")
				}
			}
		}
		// A password without a DN, or a DN without a password, is half
		// a bind: refuse it rather than bind anonymously.
		switch {
		case c.PasswordFile != "" && c.BindDN == "" && (f.value("password_file") != nil || f.value("type") != nil):
			d.errorf(n, f.sub("bind_dn"), "missing; password_file is the password of bind_dn, such as bind_dn: cn=monitor,dc=example,dc=com")
		case c.BindDN != "" && c.PasswordFile == "" && (f.value("bind_dn") != nil || f.value("type") != nil):
			d.errorf(n, f.sub("password_file"), "missing; an ldap check binding as bind_dn reads its password from password_file (leave out both for an anonymous bind)")
		}
	case CheckRADIUS:
		if f.value("type") == nil {
			// Inherited: reported where the type was written.
			return
		}
		// A key written but refused is reported as such, not as missing.
		if c.User == "" && f.value("user") == nil {
			d.errorf(n, f.sub("user"), "missing; a radius check sends an Access-Request for a user (password in password_file)")
		}
		if c.PasswordFile == "" && f.value("password_file") == nil {
			d.errorf(n, f.sub("password_file"), "missing; a radius check reads the user's password from password_file")
		}
		if c.SecretFile == "" && f.value("secret_file") == nil {
			d.errorf(n, f.sub("secret_file"), "missing; a radius check reads the shared secret from secret_file")
		}
	}
}
