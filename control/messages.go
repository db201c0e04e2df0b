package control

import (
	"github.com/directorlb/director/director"
	"github.com/directorlb/director/failover"
)

// Command names what a Request asks the daemon to do.
type Command string

// The commands directord answers.
const (
	// CmdStatus answers a Status.
	CmdStatus Command = "status"
	// CmdReload re-reads the config (DryRun: plans it) and answers a
	// ReloadResult.
	CmdReload Command = "reload"
	// CmdReconcile converges the kernel now and answers a ReloadResult.
	CmdReconcile Command = "reconcile"
	// CmdDrain and CmdEnable take a real server (Service, Address) out
	// and put it back, answering a director.DrainResult.
	CmdDrain  Command = "drain"
	CmdEnable Command = "enable"
	// CmdTakeover and CmdRelease ask the pair for a planned switchover.
	CmdTakeover Command = "takeover"
	CmdRelease  Command = "release"
)

// Status is what directorctl status prints: the director's table and
// health, and the pair.
type Status struct {
	director.Status
	// Role is the pair role, or "active" for a single director, which
	// always holds its VIPs.
	Role     string           `json:"role"`
	Failover *failover.Status `json:"failover,omitempty"`
	// BGP is the director's part in a bgp group; nil without bgp.
	BGP *BGPStatus `json:"bgp,omitempty"`
}

// ReloadResult is what directorctl reload (and reconcile) prints.
type ReloadResult struct {
	Config  string   `json:"config"`
	Changes int      `json:"changes"`
	Failed  int      `json:"failed"`
	Errors  []string `json:"errors,omitempty"`
	// DryRun: nothing was changed; Plan is what a reload would change in
	// the kernel, and Notes what it would change that needs a restart.
	DryRun   bool     `json:"dry_run,omitempty"`
	Plan     []string `json:"plan,omitempty"`
	Notes    []string `json:"notes,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
}
