package ldirectord

import (
	"strconv"
	"strings"
)

// globals are the directives before (or between) the virtual sections;
// ldirectord applies them to every virtual wherever they are written.
type globals struct {
	checkInterval    int // seconds; ldirectord's default 10 (set_defaults)
	checkTimeout     int // -1: unset (set_defaults: $CHECKTIMEOUT = -1)
	negotiateTimeout int // -1: unset (set_defaults: $NEGOTIATETIMEOUT = -1)
	failureCount     int // ldirectord's default 1
	quiescent        string
	fork             bool
	cleanStop        string // "" when not written
	fallback         *directive
	fallback6        *directive
}

// Defaults of ldirectord's set_defaults, and of a timeout neither
// checktimeout nor negotiatetimeout sets (ld_setup).
const (
	defaultCheckInterval    = 10
	defaultCheckTimeout     = 5
	defaultNegotiateTimeout = 30
)

// globalNotes says, for each global directive that has no director
// equivalent, what to do instead.
var globalNotes = map[string]string{
	"autoreload":       "not carried over: directord does not watch its file; reload with `systemctl reload directord` (SIGHUP) after editing",
	"callback":         "not carried over: directord runs no command when its file changes; run it where you edit the file",
	"logfile":          "not carried over: directord logs to stderr (the journal under systemd)",
	"execute":          "not carried over: import that file too (directorctl import ldirectord FILE) and name it in this file's include:",
	"supervised":       "not carried over: directord always runs in the foreground under its supervisor; nothing to do",
	"readdquiescent":   "not carried over: directord restores a recovered server's weight itself; nothing to do",
	"emailalert":       "not carried over: directord sends no mail; alert on its metrics (director_real_server_healthy) or a notify hook",
	"emailalertfreq":   "not carried over: directord sends no mail; alert on its metrics",
	"emailalertstatus": "not carried over: directord sends no mail; alert on its metrics",
	"emailalertfrom":   "not carried over: directord sends no mail; alert on its metrics",
	"smtp":             "not carried over: directord sends no mail; alert on its metrics",
	"maintenancedir":   "not carried over: drain a server with `directorctl drain SERVICE ADDRESS` instead of a file in a directory",
	"fallbackcommand":  "not carried over: directord runs no command when every server is down; give the service a sorry_server",
	"checkcount":       "not carried over (deprecated in ldirectord): directord makes one attempt per probe; use the check's fall",
	"connecttimeout":   "ldirectord refuses this deprecated directive; use negotiatetimeout (not carried over)",
	"timeout":          "ldirectord refuses this deprecated directive; use checktimeout (not carried over)",
	"monitorfile":      "not carried over: directord logs every check transition and counts them in its metrics",
	"load":             "not carried over: directord has no load test",
}

// readGlobals applies the global directives in order; what it cannot
// carry over it reports.
func (im *conv) readGlobals(ds []directive) globals {
	g := globals{checkInterval: defaultCheckInterval, checkTimeout: -1, negotiateTimeout: -1,
		failureCount: 1, quiescent: "no"}
	for _, d := range ds {
		d := d
		switch d.Key {
		case "checkinterval":
			im.positive(d, &g.checkInterval)
		case "checktimeout":
			im.positive(d, &g.checkTimeout)
		case "negotiatetimeout":
			im.positive(d, &g.negotiateTimeout)
		case "failurecount":
			im.positive(d, &g.failureCount)
		case "quiescent":
			if im.yesNo(d) {
				g.quiescent = d.Val
			}
		case "fork":
			if im.yesNo(d) {
				g.fork = d.Val == "yes"
			}
		case "cleanstop":
			if im.yesNo(d) {
				g.cleanStop = d.Val
			}
		case "fallback":
			g.fallback = &d
		case "fallback6":
			g.fallback6 = &d
		default:
			if note, ok := globalNotes[d.Key]; ok {
				im.report(d.Line, d.Key, note)
			} else {
				im.report(d.Line, d.Key, "not an ldirectord global directive (ldirectord refuses the file here); not read")
			}
		}
	}
	return g
}

// positive reads a whole number of at least 1 into dst, as ldirectord's
// /(\d+)/ && $1 does; otherwise it reports and leaves dst.
func (im *conv) positive(d directive, dst *int) bool {
	n, err := strconv.Atoi(leadingDigits(d.Val))
	if err != nil || n < 1 {
		im.report(d.Line, d.Key, "not a positive whole number ("+quoteMsg(d.Val)+"): ldirectord refuses it; not read")
		return false
	}
	*dst = n
	return true
}

func (im *conv) yesNo(d directive) bool {
	if d.Val == "yes" || d.Val == "no" {
		return true
	}
	im.report(d.Line, d.Key, "must be yes or no ("+quoteMsg(d.Val)+"): ldirectord refuses it; not read")
	return false
}

// leadingDigits is the first run of digits in s, as Perl's /(\d+)/ finds.
func leadingDigits(s string) string {
	i := strings.IndexAny(s, "0123456789")
	if i < 0 {
		return ""
	}
	j := i
	for j < len(s) && s[j] >= '0' && s[j] <= '9' {
		j++
	}
	if j-i > 9 {
		return s[i : i+10] // too big for a timeout: let Atoi succeed and the caller bound it
	}
	return s[i:j]
}

func itoa(n int) string { return strconv.Itoa(n) }

// quoteMsg shows a source value in a report line: valid UTF-8, short.
func quoteMsg(s string) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > 60 {
		s = s[:60] + "..."
	}
	return strconv.Quote(s)
}
