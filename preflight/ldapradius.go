package preflight

import (
	"fmt"
	"strings"

	"github.com/directorlb/director/config"
	"github.com/directorlb/director/rootfile"
)

// ldapRADIUSFiles judges the files of service i's ldap or radius check as
// the check reads them at load: the password (ldap: only with bind_dn,
// as the check reads it only then), the RADIUS shared secret, which must
// not be empty, and an ldap check's CA bundle when it uses TLS.
func (c *checker) ldapRADIUSFiles(i int, ch config.Check) {
	secret := func(field, path, kind string, nonEmpty bool) {
		if path == "" {
			return
		}
		key, _, _ := c.cfg.CheckKey(i, field)
		if !c.once(kind + " " + path) {
			return
		}
		b, err := rootfile.ReadSecret(path, MaxPasswordFile)
		switch {
		case err != nil:
			c.errorf(key, "%s file %v", kind, err)
		case nonEmpty && strings.TrimRight(string(b), "\r\n") == "":
			c.errorf(key, "%s", fmt.Sprintf("secret file %s is empty; write the RADIUS shared secret in it", path))
		}
	}
	switch ch.Type {
	case config.CheckLDAP:
		if ch.BindDN != "" {
			secret("password_file", ch.PasswordFile, "password", false)
		}
		if ch.TLS != "" && ch.CAFile != "" {
			if key, _, _ := c.cfg.CheckKey(i, "ca_file"); c.once("ca " + ch.CAFile) {
				c.caFile(key, ch.CAFile)
			}
		}
	case config.CheckRADIUS:
		secret("password_file", ch.PasswordFile, "password", false)
		secret("secret_file", ch.SecretFile, "secret", true)
	}
}
