package config_test

import (
	"path/filepath"
	"testing"

	"github.com/directorlb/director/config"
)

// The udp, icmp and sip checks as written; their errors are in
// testdata/bad/check_udp.err (TestLoadBad).
func TestLoadCheckUDPICMPSIP(t *testing.T) {
	c, err := config.Load(filepath.Join("testdata", "good", "check_udp.yaml"))
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	e := c.Service("echo").Check
	eq(t, "udp", [3]string{string(e.Type), e.Send, e.Expect}, [3]string{"udp", "ping\n", "pong"})
	eq(t, "udp port", e.Port, uint16(7007))
	em := c.Service("empty").Check
	eq(t, "udp without send", [3]string{string(em.Type), em.Send, em.Expect}, [3]string{"udp", "", ""})
	eq(t, "icmp inherited", c.Service("ping").Check.Type, config.CheckICMP)
	v := c.Service("voice").Check
	eq(t, "sip", [3]any{v.Type, v.Rise, v.Fall}, [3]any{config.CheckSIP, 1, 2})
	warnings(t, c)
}
