package lab

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SpecPath is where the guest's init finds what to run.
const SpecPath = "/lab/spec.json"

// Spec tells the guest's init what to do after boot.
type Spec struct {
	// Nonce marks init's status lines, so that nothing a test prints can
	// be mistaken for them.
	Nonce string `json:"nonce"`
	// Modules are paths inside the guest, in load order.
	Modules  []string  `json:"modules"`
	Env      []string  `json:"env"`
	Commands []Command `json:"commands"`
}

// Command is one program run by init, one after another, its output going
// to the console.
type Command struct {
	Name    string        `json:"name"`
	Argv    []string      `json:"argv"`
	Dir     string        `json:"dir,omitempty"`
	Env     []string      `json:"env,omitempty"`
	Timeout time.Duration `json:"timeout,omitempty"`
}

// Marker kinds printed by init on the console, one per line:
//
//	@@lab NONCE ready                  modules loaded, about to run commands
//	@@lab NONCE exit INDEX STATUS MS    a command finished
//	@@lab NONCE done                   all commands ran; powering off
//	@@lab NONCE fail MESSAGE           init itself failed
const (
	MarkReady = "ready"
	MarkExit  = "exit"
	MarkDone  = "done"
	MarkFail  = "fail"
)

const markerPrefix = "@@lab "

// Marker formats a status line.
func Marker(nonce, kind string, fields ...string) string {
	return markerPrefix + nonce + " " + kind + strings.TrimRight(" "+strings.Join(fields, " "), " ")
}

// ParseMarker recognises a status line carrying nonce. Lines with another
// nonce are not markers.
func ParseMarker(line, nonce string) (kind string, fields []string, ok bool) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), markerPrefix+nonce+" ")
	if !ok || nonce == "" {
		return "", nil, false
	}
	f := strings.Fields(rest)
	if len(f) == 0 {
		return "", nil, false
	}
	return f[0], f[1:], true
}

// ExitStatus is one command's outcome as reported by init.
type ExitStatus struct {
	Index    int
	Status   int // -1: killed by a signal
	Duration time.Duration
}

// ParseExit decodes the fields of an exit marker.
func ParseExit(fields []string) (ExitStatus, error) {
	if len(fields) != 3 {
		return ExitStatus{}, fmt.Errorf("exit marker: want 3 fields, got %d", len(fields))
	}
	idx, err1 := strconv.Atoi(fields[0])
	st, err2 := strconv.Atoi(fields[1])
	ms, err3 := strconv.ParseInt(fields[2], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || idx < 0 || ms < 0 {
		return ExitStatus{}, fmt.Errorf("exit marker: bad fields %q", fields)
	}
	return ExitStatus{Index: idx, Status: st, Duration: time.Duration(ms) * time.Millisecond}, nil
}
