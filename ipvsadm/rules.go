package ipvsadm

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/netip"
	"strings"

	"github.com/cloudflare/ipvs"
	"github.com/cloudflare/ipvs/netmask"
)

// Command is what one line of a restore file does.
type Command int

// The commands `ipvsadm -R` executes.
const (
	AddService    Command = iota + 1 // -A, --add-service
	EditService                      // -E, --edit-service
	DeleteService                    // -D, --delete-service
	Flush                            // -C, --clear
	AddServer                        // -a, --add-server
	EditServer                       // -e, --edit-server
	DeleteServer                     // -d, --delete-server
	SetTimeouts                      // --set TCP TCPFIN UDP
	Zero                             // -Z, --zero
)

func (c Command) String() string {
	switch c {
	case AddService:
		return "add-service"
	case EditService:
		return "edit-service"
	case DeleteService:
		return "delete-service"
	case Flush:
		return "flush"
	case AddServer:
		return "add-server"
	case EditServer:
		return "edit-server"
	case DeleteServer:
		return "delete-server"
	case SetTimeouts:
		return "set"
	case Zero:
		return "zero"
	}
	return fmt.Sprintf("Command(%d)", int(c))
}

// Rule is one parsed line of a restore file, with every default ipvsadm
// applies already applied: scheduler wlc for -A and -E, weight 1 and
// direct routing (-g) for -a and -e, persistence timeout 360 for a bare
// -p, the service's port for a real server given without one (and for
// every -g or -i real server of a service that is not a fwmark one).
type Rule struct {
	Line    int     // 1-based line number in the input
	Text    string  // the line's words, for messages
	Command Command // what to do

	// Service is the virtual service of -A -E -D -a -e -d and -Z (zero
	// for a -Z of every service). A fwmark service has no protocol: the
	// kernel keeps none for it.
	Service ipvs.Service
	// Destination is the real server of -a -e -d.
	Destination ipvs.Destination
	// Timeouts are --set's values in seconds; 0 leaves one unchanged.
	Timeouts ipvs.Config
	// PersistenceEngine is --pe's engine. cloudflare/ipvs cannot set
	// one, so Apply refuses a rule that has it.
	PersistenceEngine string
}

// LineError is an error in one line of a restore file.
type LineError struct {
	Line int
	// Option is the option or command the error is about, as written
	// ("-w", "--weight"); "" when it is about the whole line.
	Option string
	Err    error
	// Skipped tells how ipvsadm -R goes on after it: true for an error
	// it reports and then continues with the next line (an unknown
	// option, a missing argument, or the kernel refusing the line),
	// false for one it exits on, leaving the lines after it undone.
	Skipped bool
}

func (e *LineError) Error() string {
	if e.Option != "" {
		return fmt.Sprintf("line %d: %s: %v", e.Line, e.Option, e.Err)
	}
	return fmt.Sprintf("line %d: %v", e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// ParseRules reads a restore file: what `ipvsadm -S` writes and
// `ipvsadm -R` reads, one ipvsadm command line per line, with short or
// long options. Blank lines are skipped, and so is everything from a
// word that starts with # to the end of its line (ipvsadm -R itself
// fails on comments; ipvsadm-restore strips whole-line ones). A listing
// line (-L, -l, -S) is checked and then skipped: ipvsadm prints the
// table there, which changes nothing. Addresses and ports must be
// numeric: see ParseRulesWith for names.
//
// It parses exactly as ipvsadm 1.31 does, quirks included, and returns
// what ipvsadm -R would execute along with every error, each a
// *LineError with its line number, joined: a line with an error ipvsadm
// only reports (LineError.Skipped) is left out and parsing goes on; at
// an error ipvsadm exits on, parsing stops, and the rules before it are
// returned. Applying the returned rules even when the error is not nil
// is ipvsadm -R's behaviour (Restore does that); applying nothing unless
// it is nil is the careful one.
func ParseRules(r io.Reader) ([]Rule, error) { return ParseRulesWith(r, nil) }

// ParseRulesWith is ParseRules, looking up host and service names with
// names, as ipvsadm does through the C library. With a nil names, a
// name is an error.
func ParseRulesWith(r io.Reader, names NameLookup) ([]Rule, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read rules: %w", err)
	}
	var rules []Rule
	var errs []error
	for i, line := range strings.Split(string(data), "\n") {
		words := splitWords(line)
		if len(words) == 0 {
			continue
		}
		lp := &lineParser{line: i + 1, names: names, args: words}
		rule, lerr := lp.parse()
		if lerr != nil {
			errs = append(errs, lerr)
			if !lerr.Skipped {
				break
			}
			continue
		}
		if rule.Command == 0 {
			// A listing (-L, -l, -S): ipvsadm prints the table and goes
			// on; it changes nothing.
			continue
		}
		rule.Line, rule.Text = i+1, strings.Join(words, " ")
		rules = append(rules, rule)
	}
	return rules, errors.Join(errs...)
}

// splitWords splits a line as ipvsadm's config_stream_read does: words
// separated by spaces, tabs and carriage returns, the word "ipvsadm"
// dropped wherever it is (so lines may be written as commands), a C
// string ending at a NUL byte. Unlike ipvsadm it ends the line at a word
// starting with #.
func splitWords(line string) []string {
	var words []string
	for _, w := range strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' }) {
		if w[0] == '#' {
			break
		}
		if i := strings.IndexByte(w, 0); i >= 0 {
			w = w[:i]
		}
		if w == "ipvsadm" || w == "" {
			continue
		}
		words = append(words, w)
	}
	return words
}

// ipvsadm's option columns (ipvsadm.c, OPTC_*), the bit each sets in
// the options word, and their names in its messages.
const (
	optcNumeric = iota
	optcConnection
	optcService
	optcScheduler
	optcPersistent
	optcNetmask
	optcServer
	optcForward
	optcWeight
	optcUThreshold
	optcLThreshold
	optcMcast
	optcTimeout
	optcDaemon
	optcStats
	optcRate
	optcThresholds
	optcPersistentConn
	optcNoSort
	optcSyncID
	optcExact
	optcOnePacket
	optcPE
	optcSchedFlags
	optcMcastGroup
	optcMcastPort
	optcMcastTTL
	optcSyncMaxlen
	optcTunInfo
	optcTunType
	optcTunPort
	optcTunNocsum
	optcTunCsum
	optcTunRemcsum
	numOptc
)

var optcNames = [numOptc]string{
	"numeric", "connection", "service-address", "scheduler", "persistent", "netmask", "real-server",
	"forwarding-method", "weight", "u-threshold", "l-threshold", "mcast-interface", "timeout", "daemon",
	"stats", "rate", "thresholds", "persistent-conn", "nosort", "syncid", "exact", "ops", "pe",
	"sched-flags", "mcast-group", "mcast-port", "mcast-ttl", "sync-maxlen", "tun-info", "tun-type",
	"tun-port", "tun-nocsum", "tun-csum", "tun-remcsum",
}

// ipvsadm's commands (CMD_*), numbered as there.
const (
	cmdAdd = iota + 1
	cmdEdit
	cmdDel
	cmdFlush
	cmdList
	cmdAddDest
	cmdDelDest
	cmdEditDest
	cmdTimeout
	cmdStartDaemon
	cmdStopDaemon
	cmdRestore
	cmdSave
	cmdZero
)

// commandsVOptions is ipvsadm's table of legal combinations of commands
// (rows, CMD_* - 1) and options (columns, OPTC_*): '+' compulsory, 'x'
// illegal, '1' exclusive, ' ' optional.
var commandsVOptions = [...]string{
	"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // ADD
	"xx+   xxxxxxxxxxxxxxx   xxxxxxxxxx", // EDIT
	"xx+xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // DEL
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // FLUSH
	" 11xxxxxxxxx11       xxxxxxx xxxxx", // LIST
	"xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // ADDSRV
	"xx+xxx+xxxxxxxxxxxxxxxxxxxxxxxxxxx", // DELSRV
	"xx+xxx+    xxxxxxxxxxxxxxxxxx     ", // EDITSRV
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // TIMEOUT
	"xxxxxxxxxxx xxxxxxx xxxx    xxxxxx", // STARTD
	"xxxxxxxxxxxxxxxxxxx xxxxxxxxxxxxxx", // STOPD
	"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // RESTORE
	" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // SAVE
	"xx xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", // ZERO
}

// tunnelVOptions is ipvsadm's tunnel_types_v_options: rows ipip, gue,
// gre; columns --tun-port, --tun-nocsum, --tun-csum, --tun-remcsum.
var (
	tunnelVOptions = [...]string{"xxxx", "+111", "x11x"}
	tunnelOptc     = [...]int{optcTunPort, optcTunNocsum, optcTunCsum, optcTunRemcsum}
)

const (
	maxTimeout = 86400 * 31 // MAX_TIMEOUT: 31 days
	// maxWeight is what Debian's ipvsadm 1.31 accepts for -w (Debian
	// patches upstream's 65535 up to the kernel's INT_MAX).
	maxWeight = math.MaxInt32
	// defaultPersistence is IPVS_SVC_PERSISTENT_TIMEOUT, for a bare -p.
	defaultPersistence = 360
	defaultScheduler   = "wlc"
)

// parseError is an error found while parsing one line.
func (lp *lineParser) fail(option string, format string, args ...any) *LineError {
	return &LineError{Line: lp.line, Option: option, Err: fmt.Errorf(format, args...)}
}

// lineParser parses one line as ipvsadm's parse_options and
// process_options do.
type lineParser struct {
	line  int
	names NameLookup
	args  []string

	// popt's state
	next         int
	bundle       string // the rest of a bundle of short options ("-At")
	restLeftover bool   // after "--"
	leftovers    []string
	lastArg      string // the argument popt consumed last (poptBadOption)
	spelledLast  string // how the option popt returned last was written

	cmd      int
	cmdWord  string
	options  uint64
	spelled  [numOptc]string // each option as written, for messages
	svc      svcState
	dest     destState
	schedArg string
	pe       string
	timeouts ipvs.Config
}

// svcState is ipvsadm's ipvs_service_t while a line is parsed.
type svcState struct {
	af       ipvs.AddressFamily
	protocol ipvs.Protocol
	addr     netip.Addr
	port     uint16
	fwmark   uint32
	sched    string
	flags    ipvs.Flags
	timeout  uint32
	// netmask is the kernel's u32: an IPv4 mask (first byte in the top
	// bits) or an IPv6 prefix length.
	netmask uint32
}

// destState is ipvsadm's ipvs_dest_t while a line is parsed.
type destState struct {
	af         ipvs.AddressFamily
	addr       netip.Addr
	port       uint16
	fwd        ipvs.ForwardType
	weight     int64
	uthreshold int64
	lthreshold int64
	tunType    ipvs.TunnelType
	tunPort    uint16
	tunFlags   ipvs.TunnelFlags
}

func (lp *lineParser) parse() (Rule, *LineError) {
	// process_options' defaults.
	lp.dest.weight = 1
	lp.dest.fwd = ipvs.DirectRoute
	lp.svc.netmask = 0xffffffff

	o, _, perr := lp.nextOpt()
	if perr != nil || o == nil {
		// ipvsadm: tryhelp_exit.
		return Rule{}, lp.fail("", "expected a command (-A, -E, -D, -a, -e, -d, -C, -Z or --set) first")
	}
	lp.cmdWord = lp.spelledLast
	switch o.tag {
	case tagAddService:
		lp.cmd = cmdAdd
	case tagEditService:
		lp.cmd = cmdEdit
	case tagDeleteService:
		lp.cmd = cmdDel
	case tagAddServer:
		lp.cmd = cmdAddDest
	case tagEditServer:
		lp.cmd = cmdEditDest
	case tagDeleteServer:
		lp.cmd = cmdDelDest
	case tagClear:
		lp.cmd = cmdFlush
	case tagZero:
		lp.cmd = cmdZero
	case tagSet:
		lp.cmd = cmdTimeout
	case tagList:
		lp.cmd = cmdList
	case tagSave:
		lp.cmd = cmdSave
	case tagRestore, tagHelp, tagVersion:
		return Rule{}, lp.fail(lp.cmdWord, "not a command for a restore file")
	case tagStartDaemon, tagStopDaemon:
		return Rule{}, lp.fail(lp.cmdWord, "connection sync daemons are not supported in a restore file")
	default:
		return Rule{}, lp.fail(lp.cmdWord, "expected a command (-A, -E, -D, -a, -e, -d, -C, -Z or --set) first")
	}

	for {
		o, arg, perr := lp.nextOpt()
		if perr != nil {
			// ipvsadm prints popt's error and goes on with the next line.
			perr.Skipped = true
			return Rule{}, perr
		}
		if o == nil {
			break
		}
		if err := lp.option(o, arg); err != nil {
			return Rule{}, err
		}
	}

	if lp.cmd == cmdTimeout {
		if len(lp.leftovers) < 3 {
			return Rule{}, lp.fail(lp.cmdWord, "needs 3 timeout values: tcp tcpfin udp")
		}
		var t [3]uint32
		for i := range t {
			v, ok := stringToNumber(lp.leftovers[i], 0, maxTimeout)
			if !ok {
				return Rule{}, lp.fail(lp.cmdWord, "timeout %q must be 0-%d seconds", lp.leftovers[i], maxTimeout)
			}
			t[i] = uint32(v)
		}
		lp.timeouts = ipvs.Config{TCPTimeout: t[0], TCPFinTimeout: t[1], UDPTimeout: t[2]}
		lp.leftovers = lp.leftovers[3:]
	}
	if len(lp.leftovers) > 0 {
		return Rule{}, lp.fail("", "unexpected argument %q", lp.leftovers[0])
	}
	if lp.schedArg != "" {
		f, err := lp.schedFlags()
		if err != nil {
			return Rule{}, err
		}
		lp.svc.flags = lp.svc.flags&^schedFlags | f
	}
	if err := lp.checkOptions(); err != nil {
		return Rule{}, err
	}
	if err := lp.checkCommand(); err != nil {
		return Rule{}, err
	}
	if lp.cmd == cmdList || lp.cmd == cmdSave {
		return Rule{}, nil
	}
	return lp.rule(), nil
}

// checkOptions is generic_opt_check.
func (lp *lineParser) checkOptions() *LineError {
	row := commandsVOptions[lp.cmd-1]
	count, last := 0, 0
	for j := 0; j < numOptc; j++ {
		given := lp.options&(1<<j) != 0
		switch {
		case !given && row[j] == '+':
			return lp.fail(lp.cmdWord, "needs the %s option", optcNames[j])
		case given && row[j] == 'x':
			return lp.fail(lp.spelled[j], "not allowed with %s", lp.cmdWord)
		case given && row[j] == '1':
			count++
			if count > 1 {
				return lp.fail(lp.spelled[j], "conflicts with %s", lp.spelled[last])
			}
			last = j
		}
	}
	return nil
}

// checkCommand is the rest of process_options' checks and defaults.
func (lp *lineParser) checkCommand() *LineError {
	s, d := &lp.svc, &lp.dest
	switch lp.cmd {
	case cmdAdd, cmdEdit:
		if s.fwmark == 0 && s.port == 0 && s.flags&ipvs.ServicePersistent == 0 {
			return lp.fail(lp.spelled[optcService], "port 0 is only for a persistent service (-p)")
		}
		if s.flags&ipvs.ServiceOnePacket != 0 && s.fwmark == 0 && s.protocol != ipvs.UDP {
			return lp.fail(lp.spelled[optcOnePacket], "one-packet scheduling is only for UDP services")
		}
		if s.sched == "" {
			s.sched = defaultScheduler
		}
	case cmdList:
		const a = 1<<optcConnection | 1<<optcTimeout | 1<<optcDaemon
		const b = 1<<optcStats | 1<<optcRate | 1<<optcThresholds
		if (lp.options&a != 0 && lp.options&b != 0) || (lp.options&(1<<optcTimeout|1<<optcDaemon) != 0 && lp.options&(1<<optcPersistentConn) != 0) {
			return lp.fail(lp.cmdWord, "options conflict in the list command")
		}
	case cmdAddDest, cmdEditDest:
		// Direct routing and tunnelling cannot change the port.
		if s.fwmark == 0 && (d.fwd == ipvs.Tunnel || d.fwd == ipvs.DirectRoute) {
			d.port = s.port
		}
		if d.af != s.af && d.fwd != ipvs.Tunnel {
			return lp.fail(lp.spelled[optcServer], "a real server of another address family than its service needs tunnelling (-i)")
		}
		const tunOpts = 1<<optcTunType | 1<<optcTunPort | 1<<optcTunNocsum | 1<<optcTunCsum | 1<<optcTunRemcsum
		if lp.options&tunOpts != 0 && d.fwd != ipvs.Tunnel {
			for _, j := range []int{optcTunType, optcTunPort, optcTunNocsum, optcTunCsum, optcTunRemcsum} {
				if lp.options&(1<<j) != 0 {
					return lp.fail(lp.spelled[j], "tunnel options need tunnelling (-i)")
				}
			}
		}
		return lp.checkTunnel()
	}
	return nil
}

// checkTunnel is tunnel_opt_check.
func (lp *lineParser) checkTunnel() *LineError {
	row := tunnelVOptions[lp.dest.tunType]
	name := tunnelNames[lp.dest.tunType]
	count, last := 0, 0
	for j, k := range tunnelOptc {
		given := lp.options&(1<<k) != 0
		switch {
		case !given && row[j] == '+':
			return lp.fail("--tun-type", "%s needs --%s", name, optcNames[k])
		case given && row[j] == 'x':
			return lp.fail(lp.spelled[k], "not allowed with tunnel type %s", name)
		case given && row[j] == '1':
			count++
			if count > 1 {
				return lp.fail(lp.spelled[k], "conflicts with %s", lp.spelled[last])
			}
			last = k
		}
	}
	return nil
}

// schedFlags is parse_sched_flags: flag names are checked against the
// scheduler given on the line (wlc when none is).
func (lp *lineParser) schedFlags() (ipvs.Flags, *LineError) {
	sched := lp.svc.sched
	if sched == "" {
		sched = defaultScheduler
	}
	opt := lp.spelled[optcSchedFlags]
	var flags ipvs.Flags
	n := 0
	for _, name := range strings.Split(lp.schedArg, ",") {
		if name == "" { // strtok skips empty fields
			continue
		}
		n++
		var f ipvs.Flags
		var needs string
		switch name {
		case "flag-1":
			f = ipvs.ServiceSchedulerOpt1
		case "flag-2":
			f = ipvs.ServiceSchedulerOpt2
		case "flag-3":
			f = ipvs.ServiceSchedulerOpt3
		case "sh-fallback":
			f, needs = ipvs.ServiceSchedulerOpt1, "sh"
		case "sh-port":
			f, needs = ipvs.ServiceSchedulerOpt2, "sh"
		case "mh-fallback":
			f, needs = ipvs.ServiceSchedulerOpt1, "mh"
		case "mh-port":
			f, needs = ipvs.ServiceSchedulerOpt2, "mh"
		default:
			return 0, lp.fail(opt, "invalid scheduler flag %q", name)
		}
		if needs != "" && sched != needs {
			return 0, lp.fail(opt, "scheduler flag %q is only for scheduler %s", name, needs)
		}
		flags |= f
	}
	if n == 0 {
		// ipvsadm crashes here (strtok finds no flag).
		return 0, lp.fail(opt, "no scheduler flag in %q", lp.schedArg)
	}
	return flags, nil
}

// setOption is set_option: each option at most once per line.
func (lp *lineParser) setOption(optc int, spelled string) *LineError {
	if lp.options&(1<<optc) != 0 {
		if lp.spelled[optc] == spelled {
			return lp.fail(spelled, "given more than once")
		}
		return lp.fail(spelled, "conflicts with %s: only one %s option is allowed", lp.spelled[optc], optcNames[optc])
	}
	lp.options |= 1 << optc
	lp.spelled[optc] = spelled
	return nil
}

// option handles one option as parse_options' loop does.
func (lp *lineParser) option(o *optDef, arg *string) *LineError {
	spelled := lp.spelledLast
	set := func(optc int) *LineError { return lp.setOption(optc, spelled) }
	s, d := &lp.svc, &lp.dest
	switch o.tag {
	case tagTCP, tagUDP, tagSCTP:
		if err := set(optcService); err != nil {
			return err
		}
		s.protocol = map[optTag]ipvs.Protocol{tagTCP: ipvs.TCP, tagUDP: ipvs.UDP, tagSCTP: ipvs.SCTP}[o.tag]
		if lp.parseService(*arg, s)&serviceAddr == 0 {
			return lp.fail(spelled, "illegal virtual service address[:port] %q", *arg)
		}
	case tagFwmark:
		if err := set(optcService); err != nil {
			return err
		}
		s.af, s.protocol = ipvs.INET, ipvs.TCP
		mark, ok := parseFwmark(*arg)
		if !ok {
			return lp.fail(spelled, "fwmark must be 1-4294967295, got %q", *arg)
		}
		s.fwmark = mark
	case tagScheduler:
		if err := set(optcScheduler); err != nil {
			return err
		}
		s.sched = cString(*arg, 15) // IP_VS_SCHEDNAME_MAXLEN - 1
	case tagPersistent:
		if err := set(optcPersistent); err != nil {
			return err
		}
		s.flags |= ipvs.ServicePersistent
		s.timeout = defaultPersistence
		if arg != nil {
			v, ok := stringToNumber(*arg, 1, maxTimeout)
			if !ok {
				return lp.fail(spelled, "persistence timeout must be 1-%d seconds, got %q", maxTimeout, *arg)
			}
			s.timeout = uint32(v)
		}
	case tagNetmask:
		if err := set(optcNetmask); err != nil {
			return err
		}
		if s.af != ipvs.INET6 {
			a, ok := inetAton(*arg)
			if !ok && lp.names != nil {
				if h, err := lp.names.LookupHost(*arg); err == nil && h.Is4() {
					a, ok = h, true
				}
			}
			if !ok {
				return lp.fail(spelled, "illegal persistence netmask %q", *arg)
			}
			b := a.As4()
			s.netmask = uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
		} else {
			s.netmask = uint32(atoi(*arg))
			if s.netmask < 1 || s.netmask > 128 {
				return lp.fail(spelled, "IPv6 persistence prefix length must be 1-128, got %q", *arg)
			}
		}
	case tagRealServer:
		if err := set(optcServer); err != nil {
			return err
		}
		t := *s
		parsed := lp.parseService(*arg, &t)
		d.af, d.addr, d.port = t.af, t.addr, t.port
		if parsed&serviceAddr == 0 {
			return lp.fail(spelled, "illegal real server address[:port] %q", *arg)
		}
		if parsed == serviceAddr {
			d.port = s.port
		}
	case tagIPIP, tagGatewaying, tagMasq:
		if err := set(optcForward); err != nil {
			return err
		}
		d.fwd = map[optTag]ipvs.ForwardType{tagIPIP: ipvs.Tunnel, tagGatewaying: ipvs.DirectRoute, tagMasq: ipvs.Masquerade}[o.tag]
	case tagWeight:
		if err := set(optcWeight); err != nil {
			return err
		}
		v, ok := stringToNumber(*arg, 0, maxWeight)
		if !ok {
			return lp.fail(spelled, "weight must be 0-%d", maxWeight)
		}
		d.weight = v
	case tagUThreshold, tagLThreshold:
		optc, what, field := optcUThreshold, "upper", &d.uthreshold
		if o.tag == tagLThreshold {
			optc, what, field = optcLThreshold, "lower", &d.lthreshold
		}
		if err := set(optc); err != nil {
			return err
		}
		v, ok := stringToNumber(*arg, 0, math.MaxInt32)
		if !ok {
			return lp.fail(spelled, "%s threshold must be 0-%d", what, math.MaxInt32)
		}
		*field = v
	case tagSyncID:
		if err := set(optcSyncID); err != nil {
			return err
		}
		if _, ok := stringToNumber(*arg, 0, 255); !ok {
			return lp.fail(spelled, "syncid must be 0-255")
		}
	case tagMcastGroup:
		if err := set(optcMcastGroup); err != nil {
			return err
		}
		a, err := netip.ParseAddr(*arg)
		if strings.Contains(*arg, ":") {
			if err != nil || !a.Is6() || a.Zone() != "" || !a.IsMulticast() {
				return lp.fail(spelled, "invalid IPv6 multicast group %q", *arg)
			}
		} else if err != nil || !a.Is4() || !a.IsMulticast() {
			return lp.fail(spelled, "invalid IPv4 multicast group %q", *arg)
		}
	case tagMcastPort, tagMcastTTL, tagSyncMaxlen:
		optc, limit := optcMcastPort, int64(65535)
		switch o.tag {
		case tagMcastTTL:
			optc, limit = optcMcastTTL, 255
		case tagSyncMaxlen:
			optc, limit = optcSyncMaxlen, 65535-20-8
		}
		if err := set(optc); err != nil {
			return err
		}
		if _, ok := stringToNumber(*arg, 1, limit); !ok {
			return lp.fail(spelled, "must be 1-%d", limit)
		}
	case tagIPv6:
		if s.fwmark == 0 {
			return lp.fail(spelled, "must follow -f")
		}
		s.af, s.netmask = ipvs.INET6, 128
	case tagOps:
		if err := set(optcOnePacket); err != nil {
			return err
		}
		s.flags |= ipvs.ServiceOnePacket
	case tagPE:
		if err := set(optcPE); err != nil {
			return err
		}
		lp.pe = cString(*arg, 16) // IP_VS_PENAME_MAXLEN
	case tagSchedFlags:
		if err := set(optcSchedFlags); err != nil {
			return err
		}
		lp.schedArg = cString(*arg, 127)
	case tagTunType:
		if err := set(optcTunType); err != nil {
			return err
		}
		switch *arg {
		case "ipip":
			d.tunType = ipvs.IPIP
		case "gue":
			d.tunType = ipvs.GUE
		case "gre":
			d.tunType = ipvs.GRE
		default:
			return lp.fail(spelled, "tunnel type must be ipip, gue or gre, got %q", *arg)
		}
	case tagTunPort:
		if err := set(optcTunPort); err != nil {
			return err
		}
		v, ok := stringToNumber(*arg, 1, 65535)
		if !ok {
			return lp.fail(spelled, "tunnel port must be 1-65535, got %q", *arg)
		}
		d.tunPort = uint16(v)
	case tagTunNocsum, tagTunCsum, tagTunRemcsum:
		optc, f := optcTunNocsum, ipvs.TunnelEncapNoChecksum
		switch o.tag {
		case tagTunCsum:
			optc, f = optcTunCsum, ipvs.TunnelEncapChecksum
		case tagTunRemcsum:
			optc, f = optcTunRemcsum, ipvs.TunnelEncapRemoteChecksum
		}
		if err := set(optc); err != nil {
			return err
		}
		d.tunFlags |= f
	case tagSort:
		// A no-op ipvsadm keeps for compatibility.
	default:
		if optc, ok := flagOptions[o.tag]; ok {
			return set(optc)
		}
		return lp.fail(spelled, "not an option here")
	}
	return nil
}

// flagOptions are the options without a value that only set their bit
// (all of them listing or daemon options, which the command check then
// rejects for the commands of a restore file).
var flagOptions = map[optTag]int{
	tagNumeric: optcNumeric, tagConnection: optcConnection, tagMcastInterface: optcMcast,
	tagTimeout: optcTimeout, tagDaemon: optcDaemon, tagStats: optcStats, tagRate: optcRate,
	tagThresholds: optcThresholds, tagPersistentConn: optcPersistentConn, tagNoSort: optcNoSort,
	tagExact: optcExact, tagTunInfo: optcTunInfo,
}

// rule turns the parsed state into a Rule.
func (lp *lineParser) rule() Rule {
	s, d := &lp.svc, &lp.dest
	r := Rule{PersistenceEngine: lp.pe, Timeouts: lp.timeouts}
	r.Command = map[int]Command{
		cmdAdd: AddService, cmdEdit: EditService, cmdDel: DeleteService, cmdFlush: Flush,
		cmdAddDest: AddServer, cmdEditDest: EditServer, cmdDelDest: DeleteServer,
		cmdTimeout: SetTimeouts, cmdZero: Zero,
	}[lp.cmd]
	if lp.options&(1<<optcService) != 0 {
		r.Service = ipvs.Service{
			Family: s.af, Scheduler: s.sched, Flags: s.flags, Timeout: s.timeout, FWMark: s.fwmark,
		}
		if s.fwmark == 0 {
			r.Service.Address, r.Service.Port, r.Service.Protocol = s.addr, s.port, s.protocol
		}
		if s.af == ipvs.INET6 {
			r.Service.Netmask = netmask.MaskFrom(int(s.netmask), 128)
		} else {
			r.Service.Netmask = netmask.MaskFrom4([4]byte{byte(s.netmask >> 24), byte(s.netmask >> 16), byte(s.netmask >> 8), byte(s.netmask)})
		}
	}
	if lp.options&(1<<optcServer) != 0 {
		r.Destination = ipvs.Destination{
			Address: d.addr, Port: d.port, Family: d.af, FwdMethod: d.fwd,
			Weight: uint32(d.weight), UpperThreshold: uint32(d.uthreshold), LowerThreshold: uint32(d.lthreshold),
			TunnelType: d.tunType, TunnelPort: d.tunPort, TunnelFlags: d.tunFlags,
		}
	}
	return r
}

const (
	serviceAddr = 1 << iota
	servicePort
)

// parseService is ipvsadm's parse_service, quirks included: a bracketed
// address must have a port, an IPv6 address without brackets has none,
// and a bracketed IPv4 address loses its port ("[1.2.3.4]:80" is
// 1.2.3.4 with no port).
func (lp *lineParser) parseService(buf string, s *svcState) int {
	if isAllDigits(buf) {
		return 0
	}
	var port string
	hasPort := false
	if buf[0] == '[' {
		buf = buf[1:]
		end := strings.IndexByte(buf, ']')
		if end < 0 {
			return 0
		}
		rest := buf[end+1:]
		buf = buf[:end]
		if rest == "" || rest[0] != ':' {
			return 0
		}
		port, hasPort = rest[1:], true
	}
	if a, ok := inetPton6(buf); ok {
		s.addr, s.af, s.netmask = a, ipvs.INET6, 128
	} else {
		hasPort = false
		if i := strings.LastIndexByte(buf, ':'); i >= 0 {
			buf, port, hasPort = buf[:i], buf[i+1:], true
		}
		a, ok := inetAton(buf)
		if !ok && lp.names != nil {
			if h, err := lp.names.LookupHost(buf); err == nil && h.Is4() {
				a, ok = h, true
			}
		}
		if !ok {
			return 0
		}
		s.addr, s.af = a, ipvs.INET
	}
	result := serviceAddr
	if hasPort {
		result |= servicePort
		if n, ok := stringToNumber(port, 0, 65535); ok {
			s.port = uint16(n)
		} else if p, ok := lp.servicePort(port, s.protocol); ok {
			s.port = p
		} else {
			return 0
		}
	}
	return result
}

func (lp *lineParser) servicePort(name string, proto ipvs.Protocol) (uint16, bool) {
	if lp.names == nil {
		return 0, false
	}
	return lp.names.ServicePort(name, proto)
}

// parseFwmark is parse_fwmark, which accepts 1 to 4294967295. It also
// accepts -2147483648 to -1 as the fwmarks from 2^31 up: ipvsadm -S
// prints those with %d, as negative numbers, and then cannot read its
// own save back; this reads both.
func parseFwmark(s string) (uint32, bool) {
	v, ok := stringToNumber(s, math.MinInt32, math.MaxUint32)
	if !ok || v == 0 {
		return 0, false
	}
	return uint32(v), true
}

func isAllDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// cString is strncpy into a C buffer of n+1 bytes.
func cString(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func isCSpace(c byte) bool { return c == ' ' || (c >= '\t' && c <= '\r') }

// strtol is C's strtol in base 10: leading white space, a sign, digits.
// It returns the value (saturated on overflow), how many bytes it used
// (0 when there is no number) and whether it overflowed.
func strtol(s string) (v int64, n int, overflow bool) {
	i := 0
	for i < len(s) && isCSpace(s[i]) {
		i++
	}
	neg := false
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	var u uint64
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		d := uint64(s[i] - '0')
		if u > (math.MaxUint64-d)/10 {
			overflow = true
		} else {
			u = u*10 + d
		}
		i++
	}
	if i == start {
		return 0, 0, false
	}
	switch {
	case !neg && (overflow || u > math.MaxInt64):
		return math.MaxInt64, i, true
	case neg && (overflow || u > 1<<63):
		return math.MinInt64, i, true
	case neg:
		return -int64(u), i, false
	}
	return int64(u), i, false
}

// stringToNumber is ipvsadm's string_to_number: the whole string a
// base-10 number within [min, max].
func stringToNumber(s string, min, max int64) (int64, bool) {
	v, n, overflow := strtol(s)
	if n == 0 || n != len(s) || overflow || v < min || v > max {
		return 0, false
	}
	return v, true
}

// atoi is C's atoi as glibc implements it, (int)strtol(s, NULL, 10).
func atoi(s string) int32 {
	v, _, _ := strtol(s)
	return int32(v)
}

// inetPton6 is inet_pton(AF_INET6): an IPv6 address without a zone.
func inetPton6(s string) (netip.Addr, bool) {
	if !strings.Contains(s, ":") || strings.Contains(s, "%") {
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is6() {
		return netip.Addr{}, false
	}
	return a, true
}

// inetAton is glibc's inet_aton: one to four parts separated by dots,
// each in C notation (0x hex, 0 octal, decimal), the last part filling
// the bytes left ("10.1" is 10.0.0.1), white space allowed after.
func inetAton(s string) (netip.Addr, bool) {
	var parts []uint64
	i := 0
	for {
		if i >= len(s) || s[i] < '0' || s[i] > '9' {
			return netip.Addr{}, false
		}
		v, n, ok := strtoul0(s[i:])
		if !ok {
			return netip.Addr{}, false
		}
		i += n
		if i < len(s) && s[i] == '.' {
			if len(parts) > 2 || v > 0xff {
				return netip.Addr{}, false
			}
			parts = append(parts, v)
			i++
			continue
		}
		parts = append(parts, v)
		break
	}
	if i < len(s) && !isCSpace(s[i]) {
		return netip.Addr{}, false
	}
	limits := [...]uint64{0xffffffff, 0xffffff, 0xffff, 0xff}
	last := parts[len(parts)-1]
	if last > limits[len(parts)-1] {
		return netip.Addr{}, false
	}
	var v uint32
	for k, p := range parts[:len(parts)-1] {
		v |= uint32(p) << (24 - 8*k)
	}
	v |= uint32(last)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// strtoul0 is strtoul(s, &end, 0) for s starting with a digit: the
// value, the bytes used, and false on a value over 32 bits (which
// inet_aton rejects anyway).
func strtoul0(s string) (uint64, int, bool) {
	base, i := uint64(10), 0
	if s[0] == '0' {
		base, i = 8, 1
		if len(s) > 2 && (s[1] == 'x' || s[1] == 'X') && isHex(s[2]) {
			base, i = 16, 2
		}
	}
	var v uint64
	for ; i < len(s); i++ {
		var d uint64
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			d = uint64(c - '0')
		case c >= 'a' && c <= 'f':
			d = uint64(c-'a') + 10
		case c >= 'A' && c <= 'F':
			d = uint64(c-'A') + 10
		default:
			d = 99
		}
		if d >= base {
			break
		}
		v = v*base + d
		if v > 0xffffffff {
			return 0, 0, false
		}
	}
	return v, i, true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
