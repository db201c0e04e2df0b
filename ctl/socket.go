package ctl

import (
	"flag"
	"fmt"
	"io"
	"os"
	"syscall"

	"gopkg.in/yaml.v3"

	"github.com/directorlb/director/config"
)

// socketFlags say where directord's control socket is: -socket PATH, or
// -config FILE, the file directord was started with, whose
// control.socket it is. The unit's ExecReload knows only the config file
// (`directorctl reload -config /etc/director/director.yaml`), and a
// socket moved in that file must not leave the reload talking to the
// old path.
type socketFlags struct {
	fs             *flag.FlagSet
	socket, config string
}

func newSocketFlags(fs *flag.FlagSet) *socketFlags {
	s := &socketFlags{fs: fs}
	fs.StringVar(&s.socket, "socket", config.DefaultSocket, "directord's control socket")
	fs.StringVar(&s.config, "config", "", "directord's config file: the socket is its control.socket (instead of -socket)")
	return s
}

// path is the socket to dial, once the flags are parsed.
func (s *socketFlags) path() (string, error) {
	socketSet := false
	s.fs.Visit(func(f *flag.Flag) { socketSet = socketSet || f.Name == "socket" })
	switch {
	case s.config != "" && socketSet:
		return "", usagef("-socket and -config both say where directord is: give one")
	case s.config != "":
		return socketOf(s.config)
	}
	return s.socket, nil
}

// socketOf reads control.socket from a director config file, and only
// that: a file being edited, invalid elsewhere, still names the socket of
// the daemon that runs it (status and drain must work meanwhile, and a
// reload must reach the daemon to have the file refused with its
// FILE:LINE:COL list). An empty or absent control.socket is the default,
// as directord reads it.
func socketOf(path string) (string, error) {
	// As config.Load opens it: a FIFO at the path must not block.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return "", fmt.Errorf("finding directord's socket: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", fmt.Errorf("finding directord's socket: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("finding directord's socket: %s: not a regular file", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, config.MaxSize+1))
	if err != nil {
		return "", fmt.Errorf("finding directord's socket: %w", err)
	}
	if len(data) > config.MaxSize {
		return "", fmt.Errorf("finding directord's socket: %s: larger than %d MiB", path, config.MaxSize>>20)
	}
	var doc struct {
		Control struct {
			Socket string `yaml:"socket"`
		} `yaml:"control"`
	}
	if err := yamlUnmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("finding directord's socket: control.socket in %s: %w", path, err)
	}
	if doc.Control.Socket == "" {
		return config.DefaultSocket, nil
	}
	return doc.Control.Socket, nil
}

// yamlUnmarshal is yaml.Unmarshal with its panics (yaml.v3 has some on
// malformed input) turned into errors, as config's parser does.
func yamlUnmarshal(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: the YAML parser failed on this file (%v)", r)
		}
	}()
	return yaml.Unmarshal(data, v)
}
