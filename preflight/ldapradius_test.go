package preflight_test

import (
	"os"
	"path/filepath"
	"testing"
)

// check-config judges the files of ldap and radius checks as those
// checks read them at load.
func TestCheckLDAPRADIUSFiles(t *testing.T) {
	setup := func(t *testing.T) (h *host, secret string, text func() string) {
		h = newHost(t)
		secret = filepath.Join(h.dir, "radius.secret")
		if err := os.WriteFile(secret, []byte("testing123\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		chmod(t, secret, 0o600)
		return h, secret, func() string {
			return `services:
  - name: ldap
    vip: 192.0.2.10
    port: 389
    check:
      type: ldap
      tls: starttls
      ca_file: ` + h.ca + `
      bind_dn: cn=x
      password_file: ` + h.pass + `
  - name: radius
    vip: 192.0.2.10
    port: 1812
    protocol: udp
    check:
      type: radius
      user: u
      password_file: ` + h.pass + `
      secret_file: ` + secret + `
`
		}
	}
	t.Run("good", func(t *testing.T) {
		_, _, text := setup(t)
		if errs, warns := check(t, text()); len(errs)+len(warns) != 0 {
			t.Errorf("errors %v, warnings %v", errs, warns)
		}
	})
	t.Run("secret readable by others", func(t *testing.T) {
		_, secret, text := setup(t)
		chmod(t, secret, 0o644)
		errs, _ := check(t, text())
		one(t, "errors", errs, "19:20: services[1].check.secret_file", "mode 0644")
	})
	t.Run("secret empty", func(t *testing.T) {
		_, secret, text := setup(t)
		if err := os.WriteFile(secret, []byte("\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		errs, _ := check(t, text())
		one(t, "errors", errs, "19:20: services[1].check.secret_file", "is empty")
	})
	t.Run("password readable by others", func(t *testing.T) {
		h, _, text := setup(t)
		chmod(t, h.pass, 0o640)
		// Reported once, at the first check naming the file.
		errs, _ := check(t, text())
		one(t, "errors", errs, "10:22: services[0].check.password_file", "mode 0640")
	})
	t.Run("ldap ca not PEM", func(t *testing.T) {
		h, _, text := setup(t)
		if err := os.WriteFile(h.ca, []byte("no\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		errs, _ := check(t, text())
		one(t, "errors", errs, "8:16: services[0].check.ca_file", "no PEM certificate")
	})
}
