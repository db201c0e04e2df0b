package lab

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMarkerRoundTrip(t *testing.T) {
	tests := []struct {
		kind   string
		fields []string
	}{
		{MarkReady, nil},
		{MarkDone, nil},
		{MarkExit, []string{"0", "0", "123"}},
		{MarkExit, []string{"12", "-1", "0"}},
		{MarkFail, []string{"mount", "/proc:", "operation", "not", "permitted"}},
	}
	for _, nonce := range []string{"0123456789abcdef", "n"} {
		for _, tt := range tests {
			line := Marker(nonce, tt.kind, tt.fields...)
			if strings.ContainsAny(line, "\n\r") || line != strings.TrimSpace(line) {
				t.Errorf("Marker(%q, %q, %q) = %q: not one trimmed line", nonce, tt.kind, tt.fields, line)
			}
			for _, variant := range []string{line, line + "\r", "  " + line + "  ", "\t" + line + "\r\n"} {
				kind, fields, ok := ParseMarker(variant, nonce)
				if !ok || kind != tt.kind || !slices.Equal(fields, tt.fields) {
					t.Errorf("ParseMarker(%q, %q) = %q, %q, %v; want %q, %q", variant, nonce, kind, fields, ok, tt.kind, tt.fields)
				}
			}
		}
	}
}

func TestMarkerEmptyFieldsAddNoSpace(t *testing.T) {
	if a, b := Marker("n", MarkDone), Marker("n", MarkDone, "", ""); a != b || strings.HasSuffix(a, " ") {
		t.Errorf("Marker without fields = %q, with empty fields = %q", a, b)
	}
}

func TestParseMarkerRejects(t *testing.T) {
	const nonce = "cafe"
	tests := []struct {
		name, line, nonce string
	}{
		{"other nonce", Marker("beef", MarkDone), nonce},
		{"nonce with our nonce as a prefix", Marker("cafebabe", MarkDone), nonce},
		{"our nonce with another as prefix", Marker("ca", MarkDone), nonce},
		{"empty nonce, empty nonce expected", Marker("", MarkDone), ""},
		{"empty nonce expected", "@@lab  done", ""},
		{"leading junk", "junk" + Marker(nonce, MarkDone), nonce},
		{"leading junk with a space", "[ 1.0] " + Marker(nonce, MarkDone), nonce},
		{"kernel message quoting a marker", "init[1]: " + Marker(nonce, MarkExit, "0", "0", "1"), nonce},
		{"no kind", "@@lab cafe", nonce},
		{"no kind, trailing space", "@@lab cafe   ", nonce},
		{"prefix without space", "@@labcafe done", nonce},
		{"other prefix", "@@LAB cafe done", nonce},
		{"empty line", "", nonce},
		{"test output", "ok  \tgithub.com/directorlb/director/ipvs\t0.1s", nonce},
	}
	for _, tt := range tests {
		if kind, fields, ok := ParseMarker(tt.line, tt.nonce); ok {
			t.Errorf("%s: ParseMarker(%q, %q) = %q, %q, true; want not a marker", tt.name, tt.line, tt.nonce, kind, fields)
		}
	}
}

func TestParseExit(t *testing.T) {
	good := []struct {
		fields []string
		want   ExitStatus
	}{
		{[]string{"0", "0", "0"}, ExitStatus{Index: 0, Status: 0, Duration: 0}},
		{[]string{"3", "1", "1500"}, ExitStatus{Index: 3, Status: 1, Duration: 1500 * time.Millisecond}},
		{[]string{"7", "-1", "20"}, ExitStatus{Index: 7, Status: -1, Duration: 20 * time.Millisecond}},
		{[]string{"100", "255", "3600000"}, ExitStatus{Index: 100, Status: 255, Duration: time.Hour}},
	}
	for _, tt := range good {
		got, err := ParseExit(tt.fields)
		if err != nil || got != tt.want {
			t.Errorf("ParseExit(%q) = %+v, %v; want %+v", tt.fields, got, err, tt.want)
		}
		// What init prints parses back to the same status.
		if _, fields, ok := ParseMarker(Marker("n", MarkExit, tt.fields...), "n"); !ok {
			t.Errorf("exit marker for %q not recognised", tt.fields)
		} else if again, err := ParseExit(fields); err != nil || again != tt.want {
			t.Errorf("ParseExit(marker fields %q) = %+v, %v", fields, again, err)
		}
	}
	bad := [][]string{
		nil,
		{},
		{"0", "0"},
		{"0", "0", "0", "0"},
		{"x", "0", "0"},
		{"0", "x", "0"},
		{"0", "0", "x"},
		{"-1", "0", "0"},
		{"0", "0", "-5"},
		{"0", "0", "1.5"},
		{"0", "", "0"},
		{"0", "0", "99999999999999999999"},
	}
	for _, fields := range bad {
		if got, err := ParseExit(fields); err == nil {
			t.Errorf("ParseExit(%q) = %+v, want an error", fields, got)
		}
	}
}
