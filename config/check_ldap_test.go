package config_test

import (
	"testing"

	"github.com/directorlb/director/config"
)

// The ldap and radius keys load into the check (their refusals are in
// testdata/bad/check_ldap_radius.yaml).
func TestLoadLDAPRADIUS(t *testing.T) {
	c, err := config.Load("testdata/good/check_ldap_radius.yaml")
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	anon := c.Service("ldap-anon").Check
	eq(t, "anonymous ldap", [4]string{string(anon.Type), anon.BindDN, anon.BaseDN, anon.TLS}, [4]string{"ldap", "", "", ""})
	b := c.Service("ldap-bind").Check
	eq(t, "ldap bind", [7]string{string(b.Type), b.TLS, b.BindDN, b.PasswordFile, b.BaseDN, b.ServerName, b.CAFile},
		[7]string{"ldap", "ldaps", "cn=monitor,dc=example,dc=com", "/etc/director/ldap.pw", "dc=example,dc=com", "ldap.example.com", "/etc/director/ldap-ca.pem"})
	r := c.Service("radius").Check
	eq(t, "radius", [4]string{string(r.Type), r.User, r.PasswordFile, r.SecretFile},
		[4]string{"radius", "monitor", "/etc/director/radius-user.pw", "/etc/director/radius.secret"})
	if _, _, ok := c.CheckKey(2, "secret_file"); !ok {
		t.Errorf("CheckKey(2, secret_file) does not find the key, which check-config names in its errors")
	}
	warnings(t, c)
}
