package version

import (
	"runtime/debug"
	"testing"
)

func TestResolve(t *testing.T) {
	rev := &debug.BuildInfo{Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}}
	dirty := &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "0123456789abcdef0123"}, {Key: "vcs.modified", Value: "true"}}}
	for _, c := range []struct {
		describe string
		info     *debug.BuildInfo
		ok       bool
		want     string
	}{
		{"v1.2.0-3-gabcdef0-dirty", rev, true, "v1.2.0-3-gabcdef0-dirty"},
		{"", rev, true, "0123456789ab"},
		{"", dirty, true, "0123456789ab-dirty"},
		{"", &debug.BuildInfo{}, true, "devel"},
		{"", nil, false, "devel"},
	} {
		if got := resolve(c.describe, c.info, c.ok); got != c.want {
			t.Errorf("resolve(%q, %v) = %q, want %q", c.describe, c.info, got, c.want)
		}
	}
	if String() == "" {
		t.Error("String() is empty")
	}
}
