package config_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/directorlb/director/config"
)

// A FIFO at the config path (planted, or a mistake) must be refused at
// once: check-config runs as ExecStartPre and a reload under SIGHUP, and
// neither may wait for a writer that never comes.
func TestLoadRefusesFIFO(t *testing.T) {
	path := filepath.Join(t.TempDir(), "director.yaml")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := config.Load(path)
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("Load of a FIFO: %v, want a refusal as not a regular file", err)
		}
	case <-time.After(10 * time.Second):
		// Unblock the open so the goroutine ends before the test does.
		if w, err := os.OpenFile(path, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("Load of a FIFO blocked for 10s")
	}
}

// The hostile file: a list of empty services that took 9 GB and
// 30 s to refuse at 16 MB. At the size limit it is now refused by count,
// before any service is decoded, with a bounded cost.
func TestParseRefusesHugeServiceList(t *testing.T) {
	const size = 2<<20 - 64
	n := (size - len("services:\n")) / len("- {}\n")
	data := []byte("services:\n" + strings.Repeat("- {}\n", n))
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := config.Parse("x.yaml", data)
	runtime.ReadMemStats(&after)
	want := fmt.Sprintf("x.yaml:2:1: services: lists %d services, more than the %d directord takes", n, config.MaxServices)
	if err == nil || err.Error() != want {
		t.Errorf("Parse: %.300v\nwant %s", err, want)
	}
	// TotalAlloc counts garbage too, so it bounds the peak from above. The
	// YAML tree alone is about 40 bytes per input byte here; decoding
	// each empty service cost over 300.
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 150<<20 {
		t.Errorf("parsing %d bytes allocated %d MB, want under 150", len(data), alloc>>20)
	}
}

func TestParseCounts(t *testing.T) {
	many := func(n int, item string) string { return strings.TrimSuffix(strings.Repeat(item+",", n), ",") }
	for _, tt := range []struct{ name, in, want string }{
		{"real servers in all",
			"services:\n  - {name: a, vip: 192.0.2.1, port: 80, real_servers: [" + many(config.MaxRealServers/2, "{}") + "]}\n" +
				"  - {name: b, vip: 192.0.2.2, port: 80, real_servers: [" + many(config.MaxRealServers/2+1, "{}") + "]}\n",
			fmt.Sprintf("x.yaml:3:55: services[1].real_servers: brings the file to %d real servers, more than the %d directord takes",
				config.MaxRealServers+1, config.MaxRealServers)},
		{"exec arguments",
			"services: [{name: a, vip: 192.0.2.1, port: 80, check: {type: exec, command: [/bin/true, " + many(256, "x") + "]}}]\n",
			"x.yaml:1:77: services[0].check.command: lists 257 arguments, more than the 256 an exec check may have"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Entries before the limit is reached are decoded, and here
			// reported as empty (past maxErrors, only counted); the one that
			// crosses it is not, and the limit is always shown.
			_, err := config.Parse("x.yaml", []byte(tt.in))
			var es config.Errors
			if !errors.As(err, &es) || !slices.ContainsFunc(es, func(e *config.Error) bool { return e.Error() == tt.want }) {
				t.Errorf("Parse: %.300v\nwant among the problems: %s", err, tt.want)
			}
		})
	}
}

// Whatever a message holds, it prints as one line with no terminal
// escape: the file's text cannot forge another problem or a prompt.
func TestErrorEscapes(t *testing.T) {
	e := &config.Error{Pos: config.Pos{File: "x.yaml", Line: 1, Col: 2},
		Key: "a\nb", Msg: "got \x1b[2J\r\u202e\xff; ok: é"}
	const want = `x.yaml:1:2: a\nb: got \x1b[2J\r\u202e\xff; ok: é`
	if got := e.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	var es config.Errors
	if !errors.As(error(config.Errors{e}), &es) || strings.Count(es.Error(), "\n") != 0 {
		t.Errorf("one problem printed on more than one line: %q", es.Error())
	}
}
