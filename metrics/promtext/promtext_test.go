package promtext

import (
	"strings"
	"testing"
)

func TestValueMatchesLabelSubsets(t *testing.T) {
	page, err := Parse(strings.NewReader(`# TYPE up gauge
up{service="web",address="a"} 1
up{service="web",address="b"} 0
# TYPE d histogram
d_bucket{le="+Inf"} 3
d_sum 1.5
d_count 3
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
		ok     bool
	}{
		{"up", []string{"address", "b"}, 0, true},
		{"up", []string{"service", "web", "address", "a"}, 1, true},
		{"up", nil, 1, true},
		{"up", []string{"address", "c"}, 0, false},
		{"d", nil, 3, true},
		{"missing", nil, 0, false},
	} {
		if v, ok := page.Value(c.name, c.labels...); v != c.want || ok != c.ok {
			t.Errorf("Value(%s, %v) = %v, %v; want %v, %v", c.name, c.labels, v, ok, c.want, c.ok)
		}
	}
	if _, err := Parse(strings.NewReader("up{ 1\n")); err == nil {
		t.Error("a broken page parsed")
	}
}
