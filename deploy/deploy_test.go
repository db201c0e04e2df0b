package deploy_test

// Checks of the monitoring files under deploy/: the Prometheus alert rules
// (promtool check rules, and promtool test rules on their unit tests) and the
// Grafana dashboard (sane JSON, every query valid PromQL), and that both use
// only the metric names README.md's "Metrics, health and logs" table lists.
// promtool comes from Debian's prometheus package (scripts/deps).

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const (
	alertsFile     = "prometheus/director-alerts.yaml"
	alertTestsFile = "prometheus/director-alerts_test.yaml"
	dashboardFile  = "grafana/director.json"
	readmeFile     = "../README.md"
)

// runPromtool runs promtool with args in dir. Without promtool the test
// fails: it is a dependency like any other, never a reason to skip.
func runPromtool(t *testing.T, dir string, args ...string) ([]byte, error) {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool is not on PATH: run `make deps` (it installs Debian's prometheus package, which ships promtool)")
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	return cmd.CombinedOutput()
}

// promtool runs promtool with args in dir and fails the test (going on) when it fails.
func promtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	if out, err := runPromtool(t, dir, args...); err != nil {
		t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// --- README metrics table ---------------------------------------------------

var backticked = regexp.MustCompile("`([^`]*)`")

// readmeMetrics returns the series names README.md's metrics table allows:
// each listed name, with a histogram's _bucket, _sum and _count instead of its
// own name. The table abbreviates some real-server rows: a name starting with
// "_" continues the row's first name's family ("director_realserver"), and
// "the four `_per_second` rates" are the family's versions of the services'
// packet and byte rate gauges.
func readmeMetrics(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	start := strings.Index(text, "\n## Metrics, health and logs\n")
	if start < 0 {
		t.Fatal("README.md: no section \"## Metrics, health and logs\"")
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	names := map[string]bool{}
	var listed []string // in table order, before histogram expansion
	rows := 0
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 4 {
			t.Fatalf("README.md: metrics table row with too few cells: %q", line)
		}
		rows++
		metricCell, kind := cells[1], strings.TrimSpace(cells[2])
		var row []string
		family := ""
		for _, m := range backticked.FindAllStringSubmatch(metricCell, -1) {
			tok := m[1]
			switch {
			case strings.HasPrefix(tok, "director_"):
				if family == "" {
					parts := strings.SplitN(tok, "_", 3)
					family = parts[0] + "_" + parts[1]
				}
				row = append(row, tok)
			case tok == "_per_second":
				if family == "" || !strings.Contains(metricCell, "four `_per_second` rates") {
					t.Fatalf("README.md: cannot read %q in row %q", tok, line)
				}
				var rates []string
				for _, n := range listed {
					if rel, ok := strings.CutPrefix(n, "director_service_"); ok &&
						strings.HasSuffix(rel, "_per_second") && !strings.HasPrefix(rel, "connections_") {
						rates = append(rates, family+"_"+rel)
					}
				}
				if len(rates) != 4 {
					t.Fatalf("README.md: %q: expected the services' four packet and byte rates, found %v", line, rates)
				}
				row = append(row, rates...)
			case strings.HasPrefix(tok, "_") && family != "":
				row = append(row, family+tok)
			default:
				t.Fatalf("README.md: cannot read %q in metrics table row %q", tok, line)
			}
		}
		if len(row) == 0 {
			t.Fatalf("README.md: no metric in row %q", line)
		}
		listed = append(listed, row...)
		for _, n := range row {
			switch kind {
			case "histogram":
				names[n+"_bucket"], names[n+"_sum"], names[n+"_count"] = true, true, true
			case "counter", "gauge":
				names[n] = true
			default:
				t.Fatalf("README.md: unknown metric type %q in row %q", kind, line)
			}
		}
	}
	// The parser must have understood the table, abbreviations included.
	for _, want := range []string{
		"director_service_connections_total",
		"director_realserver_outgoing_packets_total",
		"director_realserver_outgoing_bytes_per_second",
		"director_realserver_connections_per_second",
		"director_check_duration_seconds_bucket",
		"director_reconcile_duration_seconds_count",
		"director_loop_stalled",
	} {
		if !names[want] {
			t.Fatalf("README.md metrics table: %s not found (parsed %d rows)", want, rows)
		}
	}
	if rows < 30 {
		t.Fatalf("README.md metrics table: only %d rows parsed", rows)
	}
	return names
}

var metricName = regexp.MustCompile(`\bdirector_[a-zA-Z0-9_]*`)

// checkMetricNames fails for every director_* name in exprs README.md does not list.
func checkMetricNames(t *testing.T, allowed map[string]bool, where string, exprs []string) map[string]bool {
	t.Helper()
	used := map[string]bool{}
	for _, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			used[n] = true
			if !allowed[n] {
				t.Errorf("%s: metric %s is not in README.md's metrics table (in %q)", where, n, e)
			}
		}
	}
	return used
}

// --- alert rules ------------------------------------------------------------

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

type ruleTests struct {
	Tests []struct {
		Name        string `yaml:"name"`
		InputSeries []struct {
			Series string `yaml:"series"`
		} `yaml:"input_series"`
		AlertRuleTest []struct {
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func TestAlertRules(t *testing.T) {
	promtool(t, ".", "check", "rules", alertsFile)
	promtool(t, filepath.Dir(alertTestsFile), "test", "rules", filepath.Base(alertTestsFile))

	var rules ruleFile
	readYAML(t, alertsFile, &rules)
	var alerts []string
	var exprs []string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
			if r.Alert == "" {
				continue
			}
			alerts = append(alerts, r.Alert)
			switch r.Labels["severity"] {
			case "critical", "warning":
			default:
				t.Errorf("alert %s: labels.severity is %q, want critical or warning", r.Alert, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description"} {
				if !strings.Contains(r.Annotations[a], "{{ $labels.") {
					t.Errorf("alert %s: annotations.%s should name the alert's labels ({{ $labels.* }}): %q",
						r.Alert, a, r.Annotations[a])
				}
			}
		}
	}
	if len(alerts) == 0 {
		t.Fatalf("%s: no alerts", alertsFile)
	}

	// Every alert has a unit test that makes it fire, and the healthy pair
	// test expects none of them.
	var tests ruleTests
	readYAML(t, alertTestsFile, &tests)
	fires := map[string]bool{}
	quiet := map[string]bool{}
	var series []string
	for _, tc := range tests.Tests {
		for _, s := range tc.InputSeries {
			series = append(series, s.Series)
		}
		for _, c := range tc.AlertRuleTest {
			if len(c.ExpAlerts) > 0 {
				fires[c.Alertname] = true
			} else if tc.Name == "healthy pair" {
				quiet[c.Alertname] = true
			}
		}
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("%s: no test case where %s fires", alertTestsFile, a)
		}
		if !quiet[a] {
			t.Errorf("%s: the \"healthy pair\" test does not check that %s stays quiet", alertTestsFile, a)
		}
	}

	allowed := readmeMetrics(t)
	checkMetricNames(t, allowed, alertsFile, exprs)
	checkMetricNames(t, allowed, alertTestsFile, series)
}

// --- dashboard --------------------------------------------------------------

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type target struct {
	RefID      string `json:"refId"`
	Expr       string `json:"expr"`
	Datasource *dsRef `json:"datasource"`
}

type panel struct {
	ID         *int   `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *dsRef `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []target `json:"targets"`
	Panels  []panel  `json:"panels"` // a collapsed row's
}

type dashboard struct {
	SchemaVersion int     `json:"schemaVersion"`
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Query      any    `json:"query"`
			Definition string `json:"definition"`
			Datasource *dsRef `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
}

var (
	grafanaVar  = regexp.MustCompile(`\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]`)
	labelValues = regexp.MustCompile(`^label_values\((.+),\s*(\w+)\)$`)
)

// Grafana's built-in interval variables, as PromQL durations.
var builtins = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__range":         "1h",
}

// promQL turns a Grafana query into plain PromQL: built-in intervals become
// durations, the dashboard's own variables (only ever in =~ matchers) ".*".
func promQL(expr string, vars map[string]bool) (string, error) {
	var bad error
	out := grafanaVar.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVar.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if d, ok := builtins[name]; ok {
			return d
		}
		if !vars[name] {
			bad = fmt.Errorf("unknown variable $%s", name)
		}
		return ".*"
	})
	return out, bad
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: invalid JSON: %v", dashboardFile, err)
	}
	if d.SchemaVersion < 36 || d.UID == "" || d.Title == "" {
		t.Errorf("dashboard: schemaVersion %d, uid %q, title %q", d.SchemaVersion, d.UID, d.Title)
	}

	// Template variables: the data source, then instance and service.
	vars := map[string]bool{}
	var exprs []exprAt
	for _, v := range d.Templating.List {
		vars[v.Name] = true
		if v.Type != "query" {
			continue
		}
		if v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("variable %s: datasource should be ${datasource}, is %+v", v.Name, v.Datasource)
		}
		m := labelValues.FindStringSubmatch(v.Definition)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, v.Definition)
			continue
		}
		exprs = append(exprs, exprAt{where: "variable " + v.Name, expr: m[1]})
	}
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && (v.Type != "datasource" || v.Query != "prometheus") {
			t.Errorf("variable datasource: type %q query %v, want a prometheus datasource variable", v.Type, v.Query)
		}
	}
	for _, want := range []string{"datasource", "instance", "service"} {
		if !vars[want] {
			t.Errorf("dashboard: no template variable %q", want)
		}
	}

	// Panels, with a collapsed row's own panels.
	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	ids := map[int]string{}
	for _, p := range all {
		name := fmt.Sprintf("panel %q", p.Title)
		if p.ID == nil {
			t.Errorf("%s: no id", name)
		} else {
			if prev, dup := ids[*p.ID]; dup {
				t.Errorf("%s: id %d also used by %q", name, *p.ID, prev)
			}
			ids[*p.ID] = p.Title
			name = fmt.Sprintf("panel %d %q", *p.ID, p.Title)
		}
		if g := p.GridPos; g == nil || g.W <= 0 || g.H <= 0 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: bad gridPos %+v", name, p.GridPos)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource should be ${datasource}, is %+v", name, p.Datasource)
		}
		if p.Type == "row" {
			continue
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", name)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: target refId %q missing or repeated", name, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s target %s: datasource should be ${datasource}, is %+v", name, tg.RefID, tg.Datasource)
			}
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s target %s: no expr", name, tg.RefID)
				continue
			}
			exprs = append(exprs, exprAt{where: fmt.Sprintf("%s target %s", name, tg.RefID), expr: tg.Expr})
		}
	}
	// Every expr parses: promtool checks them as recording rules.
	type rec struct {
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	}
	var recs []rec
	var raw []string
	for i, e := range exprs {
		q, err := promQL(e.expr, vars)
		if err != nil {
			t.Errorf("%s: %v in %q", e.where, err, e.expr)
		}
		recs = append(recs, rec{Record: fmt.Sprintf("dashboard:expr_%d", i), Expr: q})
		raw = append(raw, e.expr)
	}
	out, err := yaml.Marshal(map[string]any{
		"groups": []any{map[string]any{"name": "dashboard", "rules": recs}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard-rules.yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	if o, err := runPromtool(t, dir, "check", "rules", "dashboard-rules.yaml"); err != nil {
		t.Errorf("promtool check rules on the dashboard's queries: %v\n%s", err, o)
		for i, e := range exprs {
			if strings.Contains(string(o), fmt.Sprintf(`"dashboard:expr_%d"`, i)) {
				t.Errorf("dashboard:expr_%d is %s: %s", i, e.where, e.expr)
			}
		}
	}

	allowed := readmeMetrics(t)
	used := checkMetricNames(t, allowed, dashboardFile, raw)
	var unused []string
	for n := range allowed {
		if !used[n] {
			unused = append(unused, n)
		}
	}
	sort.Strings(unused)
	t.Logf("%d queries checked; README metrics not on the dashboard: %v", len(exprs), unused)
}

type exprAt struct {
	where, expr string
}

// --- dashboard and alerts together ----------------------------------------

// alertsPanel matches a query of the firing director alerts.
var alertsPanel = regexp.MustCompile(`\bALERTS\{[^}]*alertname=~"Director\.\*"`)

// When an alert fires, the dashboard shows what it watches: every metric an
// alert rule reads is on some panel, and one panel lists the firing alerts.
func TestDashboardShowsWhatAlertsWatch(t *testing.T) {
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("%s: invalid JSON: %v", dashboardFile, err)
	}
	onDashboard := map[string]bool{}
	listsAlerts := false
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				for _, n := range metricName.FindAllString(tg.Expr, -1) {
					onDashboard[n] = true
				}
				listsAlerts = listsAlerts || alertsPanel.MatchString(tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	if !listsAlerts {
		t.Errorf("%s: no panel lists the firing alerts (ALERTS{alertname=~\"Director.*\", ...})", dashboardFile)
	}

	var rules ruleFile
	readYAML(t, alertsFile, &rules)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, n := range metricName.FindAllString(r.Expr, -1) {
				if !onDashboard[n] {
					t.Errorf("alert %s reads %s, which no panel of %s shows", r.Alert, n, dashboardFile)
				}
			}
		}
	}
}
