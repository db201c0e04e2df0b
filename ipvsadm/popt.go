package ipvsadm

// ipvsadm parses each line with popt. This is the part of popt 1.19's
// poptGetNextOpt that ipvsadm's option table uses, so that lines are
// split into options exactly as ipvsadm splits them: bundled short
// options ("-At"), values attached ("-w5", "-p=300", "--weight=5") or in
// the next word, optional values (-p takes the next word unless it
// starts with "-"), words that are not options kept as leftovers, and
// "--" ending the options.

import "strings"

type optTag int

const (
	tagAddService optTag = iota + 1
	tagEditService
	tagDeleteService
	tagClear
	tagList
	tagZero
	tagAddServer
	tagEditServer
	tagDeleteServer
	tagSet
	tagHelp
	tagVersion
	tagRestore
	tagSave
	tagStartDaemon
	tagStopDaemon
	tagTCP
	tagUDP
	tagSCTP
	tagFwmark
	tagScheduler
	tagPersistent
	tagNetmask
	tagRealServer
	tagMasq
	tagIPIP
	tagGatewaying
	tagWeight
	tagUThreshold
	tagLThreshold
	tagNumeric
	tagConnection
	tagMcastInterface
	tagSyncID
	tagTimeout
	tagDaemon
	tagStats
	tagRate
	tagThresholds
	tagPersistentConn
	tagNoSort
	tagSort
	tagExact
	tagIPv6
	tagOps
	tagPE
	tagSchedFlags
	tagMcastGroup
	tagMcastPort
	tagMcastTTL
	tagSyncMaxlen
	tagTunInfo
	tagTunType
	tagTunPort
	tagTunNocsum
	tagTunCsum
	tagTunRemcsum
)

type argKind uint8

const (
	argNone     argKind = iota
	argRequired         // POPT_ARG_STRING
	argOptional         // POPT_ARG_STRING | POPT_ARGFLAG_OPTIONAL
)

type optDef struct {
	long  string
	short byte
	arg   argKind
	tag   optTag
}

// poptOptions is ipvsadm 1.31's options_table, in its order (popt takes
// the first match).
var poptOptions = [...]optDef{
	{"add-service", 'A', argNone, tagAddService},
	{"edit-service", 'E', argNone, tagEditService},
	{"delete-service", 'D', argNone, tagDeleteService},
	{"clear", 'C', argNone, tagClear},
	{"list", 'L', argNone, tagList},
	{"list", 'l', argNone, tagList},
	{"zero", 'Z', argNone, tagZero},
	{"add-server", 'a', argNone, tagAddServer},
	{"edit-server", 'e', argNone, tagEditServer},
	{"delete-server", 'd', argNone, tagDeleteServer},
	{"set", 0, argNone, tagSet},
	{"help", 'h', argNone, tagHelp},
	{"version", 'v', argNone, tagVersion},
	{"restore", 'R', argNone, tagRestore},
	{"save", 'S', argNone, tagSave},
	{"start-daemon", 0, argRequired, tagStartDaemon},
	{"stop-daemon", 0, argRequired, tagStopDaemon},
	{"tcp-service", 't', argRequired, tagTCP},
	{"udp-service", 'u', argRequired, tagUDP},
	{"sctp-service", 0, argRequired, tagSCTP},
	{"fwmark-service", 'f', argRequired, tagFwmark},
	{"scheduler", 's', argRequired, tagScheduler},
	{"persistent", 'p', argOptional, tagPersistent},
	{"netmask", 'M', argRequired, tagNetmask},
	{"real-server", 'r', argRequired, tagRealServer},
	{"masquerading", 'm', argNone, tagMasq},
	{"ipip", 'i', argNone, tagIPIP},
	{"gatewaying", 'g', argNone, tagGatewaying},
	{"weight", 'w', argRequired, tagWeight},
	{"u-threshold", 'x', argRequired, tagUThreshold},
	{"l-threshold", 'y', argRequired, tagLThreshold},
	{"numeric", 'n', argNone, tagNumeric},
	{"connection", 'c', argNone, tagConnection},
	{"mcast-interface", 0, argRequired, tagMcastInterface},
	{"syncid", 0, argRequired, tagSyncID},
	{"timeout", 0, argNone, tagTimeout},
	{"daemon", 0, argNone, tagDaemon},
	{"stats", 0, argNone, tagStats},
	{"rate", 0, argNone, tagRate},
	{"thresholds", 0, argNone, tagThresholds},
	{"persistent-conn", 0, argNone, tagPersistentConn},
	{"nosort", 0, argNone, tagNoSort},
	{"sort", 0, argNone, tagSort},
	{"exact", 'X', argNone, tagExact},
	{"ipv6", '6', argNone, tagIPv6},
	{"ops", 'o', argNone, tagOps},
	{"pe", 0, argRequired, tagPE},
	{"sched-flags", 'b', argRequired, tagSchedFlags},
	{"mcast-group", 0, argRequired, tagMcastGroup},
	{"mcast-port", 0, argRequired, tagMcastPort},
	{"mcast-ttl", 0, argRequired, tagMcastTTL},
	{"sync-maxlen", 0, argRequired, tagSyncMaxlen},
	{"tun-info", 0, argNone, tagTunInfo},
	{"tun-type", 0, argRequired, tagTunType},
	{"tun-port", 0, argRequired, tagTunPort},
	{"tun-nocsum", 0, argNone, tagTunNocsum},
	{"tun-csum", 0, argNone, tagTunCsum},
	{"tun-remcsum", 0, argNone, tagTunRemcsum},
}

func findLong(name string) *optDef {
	for i := range poptOptions {
		if poptOptions[i].long == name {
			return &poptOptions[i]
		}
	}
	return nil
}

func findShort(c byte) *optDef {
	for i := range poptOptions {
		if c != 0 && poptOptions[i].short == c {
			return &poptOptions[i]
		}
	}
	return nil
}

// poptError is a popt error: ipvsadm prints "WORD: MESSAGE", WORD being
// the last word popt read, and goes on with the next line.
func (lp *lineParser) poptError(msg string) *LineError {
	return &LineError{Line: lp.line, Option: lp.lastArg, Err: poptErr(msg)}
}

type poptErr string

func (e poptErr) Error() string { return string(e) }

// nextOpt returns the next option and its value (nil for none), nil at
// the end of the line, or a popt error.
func (lp *lineParser) nextOpt() (*optDef, *string, *LineError) {
	var o *optDef
	var longArg *string
	for o == nil {
		if lp.bundle == "" {
			if lp.next == len(lp.args) {
				return nil, nil, nil
			}
			word := lp.args[lp.next]
			lp.next++
			lp.lastArg = word
			if lp.restLeftover || word[0] != '-' || word == "-" {
				lp.leftovers = append(lp.leftovers, word)
				continue
			}
			if word == "--" {
				lp.restLeftover = true
				continue
			}
			if word[1] == '-' {
				name, val, hasVal := strings.Cut(word[2:], "=")
				if o = findLong(name); o == nil {
					return nil, nil, lp.poptError("unknown option")
				}
				if hasVal {
					longArg = &val
				}
				lp.spelledLast = "--" + o.long
				break
			}
			// One dash: popt matches no long option of ipvsadm's with a
			// single dash, so it is a bundle of short options.
			lp.bundle = word[1:]
		}
		if o = findShort(lp.bundle[0]); o == nil {
			lp.bundle = ""
			return nil, nil, lp.poptError("unknown option")
		}
		lp.bundle = lp.bundle[1:]
		lp.spelledLast = "-" + string(o.short)
	}

	if o.arg == argNone {
		if longArg != nil || (lp.bundle != "" && lp.bundle[0] == '=') {
			return nil, nil, lp.poptError("option does not take an argument")
		}
		return o, nil, nil
	}
	switch {
	case longArg != nil:
		return o, longArg, nil
	case lp.bundle != "":
		v := lp.bundle
		if v[0] == '=' {
			v = v[1:]
		}
		lp.bundle = ""
		return o, &v, nil
	case lp.next == len(lp.args):
		if o.arg == argOptional {
			return o, nil, nil
		}
		return nil, nil, lp.poptError("missing argument")
	case o.arg == argOptional && lp.args[lp.next][0] == '-':
		return o, nil, nil
	}
	v := lp.args[lp.next]
	lp.next++
	lp.lastArg = v
	return o, &v, nil
}
