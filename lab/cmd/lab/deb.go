package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/directorlb/director/lab"
)

// debPrograms are the programs the package installs in /usr/sbin.
var debPrograms = []string{"directord", "directorctl", "realserver"}

// debBinaries unpacks a director .deb into a directory of the session
// (dpkg-deb -x), and returns its programs as guest files in /bin, where
// the demo runs them: what the package installs is what the demo shows.
func (s *session) debBinaries(ctx context.Context, deb string) ([]lab.File, error) {
	dir, err := os.MkdirTemp(s.build.Out, "deb-")
	if err != nil {
		return nil, err
	}
	out, err := exec.CommandContext(ctx, "dpkg-deb", "-x", deb, dir).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("dpkg-deb -x %s: %w\n%s", deb, err, out)
	}
	var files []lab.File
	for _, p := range debPrograms {
		src := filepath.Join(dir, "usr", "sbin", p)
		if _, err := os.Stat(src); err != nil {
			return nil, fmt.Errorf("%s: no /usr/sbin/%s: %w", deb, p, err)
		}
		files = append(files, lab.File{Src: src, Dst: "/bin/" + p, Mode: 0o755})
	}
	return files, nil
}
