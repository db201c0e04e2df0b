// Package childenv is the environment directord gives the programs it
// runs: exec health checks and the failover notify and fence hooks.
//
// They get this environment and nothing of directord's own, which may
// hold secrets (the variables a check's password_env names) and whatever
// the service manager or an admin's shell happened to set. A program that
// needs more sets it itself, or is configured as a script that does.
package childenv

// Path is the PATH the programs run with: the usual system directories,
// the local ones first, as a root login shell has them.
const Path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Environ returns the environment, as exec.Cmd's Env takes it. It is a
// fresh slice on every call, so a caller may append to it.
func Environ() []string {
	// LANG=C: messages and number formats that a check's or hook's
	// output is parsed or logged with do not depend on the host's locale.
	return []string{"PATH=" + Path, "LANG=C"}
}
