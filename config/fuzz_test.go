package config_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"unicode"

	"github.com/directorlb/director/config"
)

// FuzzParse: Parse never panics, and returns a Config or Errors, never
// both and never neither, with every problem placed and keyed.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := config.Parse("fuzz.yaml", data)
		if err == nil {
			if c == nil {
				t.Fatal("Parse returned neither a Config nor an error")
			}
			for _, w := range c.Warnings {
				checkError(t, w)
			}
			return
		}
		if c != nil {
			t.Fatalf("Parse returned a Config and an error: %v", err)
		}
		var es config.Errors
		if !errors.As(err, &es) || len(es) == 0 {
			t.Fatalf("error is %T (%v), want non-empty config.Errors", err, err)
		}
		if !errors.Is(err, config.ErrInvalid) {
			t.Fatalf("error does not match ErrInvalid: %v", err)
		}
		for _, e := range es {
			checkError(t, e)
		}
	})
}

func checkError(t *testing.T, e *config.Error) {
	t.Helper()
	if e.Pos.File != "fuzz.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 || e.Key == "" || e.Msg == "" {
		t.Fatalf("badly formed problem %#v", e)
	}
	// Printed, a problem is one line of printable text: nothing the file
	// holds can forge another line or reach the terminal as a control.
	for _, r := range e.Error() {
		if !unicode.IsPrint(r) {
			t.Fatalf("problem prints %q, holding %U: %#v", e.Error(), r, e)
		}
	}
}
