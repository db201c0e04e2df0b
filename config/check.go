package config

import (
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

var (
	checkKeys  = []string{"type", "interval", "timeout", "rise", "fall", "path", "expect_status"}
	checkTypes = []string{"tcp", "http", "https", "mysql", "postgres", "dns", "exec", "none"}
)

// maxRiseFall keeps rise and fall to counts a human would mean; beyond it a
// server would take hours to change state at any sensible interval.
const maxRiseFall = 1000

func cloneCheck(c Check) Check {
	c.ExpectStatus = slices.Clone(c.ExpectStatus)
	return c
}

// check decodes a check and merges it over base field by field, so that a
// service may change only its interval and keep the rest of defaults.check.
// Each field is validated where it is written; base is already valid.
func (d *decoder) check(n *yaml.Node, path string, base Check) Check {
	c := cloneCheck(base)
	f := d.mapping(n, path, "a check", checkKeys)
	if f == nil {
		return c
	}
	typeOK := true
	if v := f.value("type"); v != nil {
		var t string
		if t, typeOK = d.enum(v, f.sub("type"), checkTypes); typeOK {
			c.Type = t
		}
	}
	if v := f.value("interval"); v != nil {
		if iv, ok := d.positive(v, f.sub("interval")); ok {
			c.Interval = iv
		}
	}
	if v := f.value("timeout"); v != nil {
		if t, ok := d.positive(v, f.sub("timeout")); ok {
			c.Timeout = t
		}
	}
	if v := f.value("rise"); v != nil {
		if r, ok := d.integer(v, f.sub("rise"), 1, maxRiseFall); ok {
			c.Rise = int(r)
		}
	}
	if v := f.value("fall"); v != nil {
		if r, ok := d.integer(v, f.sub("fall"), 1, maxRiseFall); ok {
			c.Fall = int(r)
		}
	}
	httpOnly := func(name string) bool {
		if typeOK && c.Type != "http" && c.Type != "https" {
			d.errorf(f.key(name), f.sub(name), "only for http and https checks; this check is %s", c.Type)
			return false
		}
		return true
	}
	if v := f.value("path"); v != nil && httpOnly("path") {
		if p, ok := d.text(v, f.sub("path"), `an HTTP path starting with "/"`); ok {
			if strings.HasPrefix(p, "/") {
				c.Path = p
			} else {
				d.errorf(v, f.sub("path"), `must be an HTTP path starting with "/", got %s`, describe(v))
			}
		}
	}
	if v := f.value("expect_status"); v != nil && httpOnly("expect_status") {
		c.ExpectStatus = d.expectStatus(v, f.sub("expect_status"))
	}
	return c
}

const statusWant = "a status code from 100 to 599 or a range such as 200-299"

// expectStatus reads a list of codes and ranges; an empty result keeps
// nothing from base, on purpose: a written expect_status replaces.
func (d *decoder) expectStatus(n *yaml.Node, key string) []StatusRange {
	items, ok := d.items(n, key, "status codes or ranges")
	if !ok {
		return nil
	}
	if len(items) == 0 {
		d.errorf(n, key, "must list at least one status code or range, such as [200] or [200-299]")
		return nil
	}
	var out []StatusRange
	for _, it := range items {
		s, ok := d.scalar(it.node, it.key, statusWant)
		if !ok {
			continue
		}
		r, ok := parseStatusRange(s)
		switch {
		case !ok:
			d.errorf(it.node, it.key, "must be %s, got %s", statusWant, describe(it.node))
		case r.Min > r.Max:
			d.errorf(it.node, it.key, "range %d-%d is backwards; write %d-%d", r.Min, r.Max, r.Max, r.Min)
		default:
			out = append(out, r)
		}
	}
	return out
}

// parseStatusRange reads "200" or "200-299" with codes from 100 to 599;
// the caller checks the order, to say more than "wrong format".
func parseStatusRange(s string) (StatusRange, bool) {
	lo, hi, isRange := strings.Cut(s, "-")
	var r StatusRange
	var err1, err2 error
	r.Min, err1 = strconv.Atoi(strings.TrimSpace(lo))
	r.Max = r.Min
	if isRange {
		r.Max, err2 = strconv.Atoi(strings.TrimSpace(hi))
	}
	valid := func(code int) bool { return code >= 100 && code <= 599 }
	return r, err1 == nil && err2 == nil && valid(r.Min) && valid(r.Max)
}
