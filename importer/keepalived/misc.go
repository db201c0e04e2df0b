package keepalived

import (
	"strconv"
	"strings"
)

// miscCheck maps MISC_CHECK to an exec check. The command is split as a
// shell would split a simple command, and run without one; the real
// server's address in it becomes {address}, so that the commands of every
// real server of the service are one.
func (im *importRun) miscCheck(ck *node, c *vsCtx, addr, port string, timeout *float64) []kv {
	out := []kv{{"type", "exec"}}
	var path *node
	dynamic := false
	for _, k := range ck.kids {
		switch k.kw {
		case "misc_path":
			path = k
		case "misc_timeout":
			if v, err := strconv.ParseFloat(k.arg(0), 64); err == nil && v > 0 {
				*timeout = v
			}
		case "misc_dynamic":
			dynamic = true
		case "user":
			im.reportN(k, "director runs exec checks as root; run the program with setpriv/runuser inside it to drop privileges")
		case "connect_timeout", "retry", "nb_get_retry", "delay_before_retry", "warmup", "connect_port",
			"bindto", "bind_port", "connect_ip", "bind_if", "fwmark":
		default:
			im.reportN(k, "no equivalent in director's exec check; ignored")
		}
	}
	if path == nil {
		im.reportN(ck, "no misc_path; no check")
		return nil
	}
	cmdline := strings.Join(path.args, " ")
	args, shell := splitCommand(cmdline)
	if shell {
		args = []string{"/bin/sh", "-c", cmdline}
		im.reportN(path, "the command uses the shell (pipes, redirections, variables or globs); written as /bin/sh -c: better, put it in a script")
	} else if len(args) > 0 && !strings.HasPrefix(args[0], "/") {
		im.reportN(path, "%q is not an absolute path and director does not search PATH: written as /usr/bin/%s, check where it is", args[0], args[0])
		args[0] = "/usr/bin/" + args[0]
	}
	list := make([]string, len(args))
	for i, a := range args {
		list[i] = q(placeholders(a, addr, port))
	}
	out = append(out, kv{"command", "[" + strings.Join(list, ", ") + "]"})
	if dynamic {
		out = append(out, kv{"weight_from_exit", "true"})
		c.dynWeights = true
	}
	return out
}

// splitCommand splits a command line with quotes and backslashes; shell
// is set when it needs a shell to mean what it says.
func splitCommand(s string) (args []string, shell bool) {
	var cur strings.Builder
	in := false
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else if c == '$' && quote == '"' {
				shell = true
				cur.WriteByte(c)
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, in = c, true
		case c == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			in = true
		case c == ' ' || c == '\t':
			if in {
				args = append(args, cur.String())
				cur.Reset()
				in = false
			}
		case strings.IndexByte("|&;<>()$`*?[~", c) >= 0:
			shell = true
			cur.WriteByte(c)
			in = true
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		args = append(args, cur.String())
	}
	return args, shell
}

// placeholders writes {address} and {port} for the real server's own, where
// they stand alone (not inside a longer address or number).
func placeholders(arg, addr, port string) string {
	if addr == "" {
		return arg
	}
	var b strings.Builder
	for {
		i := strings.Index(arg, addr)
		if i < 0 {
			b.WriteString(arg)
			return b.String()
		}
		end := i + len(addr)
		if (i > 0 && isAddrByte(arg[i-1])) || (end < len(arg) && isAddrByte(arg[end]) && arg[end] != ':') {
			b.WriteString(arg[:end])
			arg = arg[end:]
			continue
		}
		b.WriteString(arg[:i])
		b.WriteString("{address}")
		arg = arg[end:]
		if port != "" && strings.HasPrefix(arg, ":"+port) && (len(arg) == len(port)+1 || !isAddrByte(arg[len(port)+1])) {
			b.WriteString(":{port}")
			arg = arg[len(port)+1:]
		}
	}
}

func isAddrByte(c byte) bool {
	return c >= '0' && c <= '9' || c == '.' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
