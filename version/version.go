// Package version is the version of director's binaries: what
// `directord -version`, `directorctl -version` and `realserver -version`
// print.
//
// `make build` sets it from `git describe --always --dirty` with
// -ldflags "-X github.com/directorlb/director/version.describe=...". A
// plain `go build` in a clone (the lab's) has no such flag; Go then
// stamps the commit into the binary, and String falls back to that.
package version

import "runtime/debug"

// describe is set at link time; it is never written at run time.
var describe string

// String is the version: git describe's, else the VCS revision Go
// recorded (with "-dirty" for a modified tree), else "devel".
func String() string {
	info, ok := debug.ReadBuildInfo()
	return resolve(describe, info, ok)
}

func resolve(describe string, info *debug.BuildInfo, ok bool) string {
	if describe != "" {
		return describe
	}
	if ok && info != nil {
		var rev string
		var dirty bool
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if rev != "" {
			if len(rev) > 12 {
				rev = rev[:12]
			}
			if dirty {
				rev += "-dirty"
			}
			return rev
		}
	}
	return "devel"
}
