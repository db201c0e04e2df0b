package daemon

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/directorlb/director/config"
)

// TestReloadRefusesModeChange: a reload (and its dry run) that adds or
// removes the bgp block is refused at the block, with the running config
// kept: the mode decides how the kernel is programmed and whether a BGP
// speaker runs, so only a restart changes it.
func TestReloadRefusesModeChange(t *testing.T) {
	dir := t.TempDir()
	write := func(name, y string) *config.Config {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(y), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, _, err := loadQuiet(p)
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	single := write("single.yaml", `services:
  - {name: web, vip: 192.0.2.10, port: 80, forward: dr, real_servers: [{address: 10.1.0.11}]}
`)
	group := write("group.yaml", `services:
  - {name: web, vip: 192.0.2.10, port: 80, forward: dr, real_servers: [{address: 10.1.0.11}]}
bgp:
  asn: 65001
  router_id: 10.0.1.2
  peers: [{address: 10.0.1.1, asn: 65000}]
`)
	for _, tc := range []struct {
		old, cfg *config.Config
		want     string
	}{
		{single, group, group.Path + ":3:1: bgp: the new config adds the bgp block; a change of mode needs a restart of directord"},
		{group, single, single.Path + ":1:1: bgp: the new config removes the bgp block; a change of mode needs a restart of directord"},
		{group, group, ""},
		{single, single, ""},
	} {
		err := modeChange(tc.old, tc.cfg)
		var errs config.Errors
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("modeChange: %v, want nil", err)
		case tc.want != "" && (!errors.As(err, &errs) || err.Error() != tc.want):
			t.Errorf("modeChange: %v\nwant config.Errors: %s", err, tc.want)
		}
	}
}
