// Package promtext reads a Prometheus text page back into families, for
// the tests that check what directord's endpoint serves.
package promtext

import (
	"io"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Page is a parsed exposition, by family name.
type Page map[string]*dto.MetricFamily

// Parse reads a text exposition; a page that breaks the format is an
// error.
func Parse(r io.Reader) (Page, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Value returns the first sample of family name whose labels include
// want, given as name, value pairs: a counter's or gauge's value, a
// histogram's sample count. ok is false if no sample matches.
func (p Page) Value(name string, want ...string) (v float64, ok bool) {
	mf := p[name]
	if mf == nil {
		return 0, false
	}
next:
	for _, m := range mf.GetMetric() {
		got := map[string]string{}
		for _, lp := range m.GetLabel() {
			got[lp.GetName()] = lp.GetValue()
		}
		for i := 0; i+1 < len(want); i += 2 {
			if got[want[i]] != want[i+1] {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}
