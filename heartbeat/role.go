package heartbeat

// Role is a director's place in the pair, as its heartbeats state it.
type Role uint8

// The roles, in the order a director passes through them.
const (
	RoleInit    Role = iota // started, waiting for the peer (initdead)
	RoleStandby             // the peer is active, or should be
	RoleActive              // holds the VIPs and syncs connections as master
	RoleFault               // cannot serve: no ping node answers, or a VIP's interface is missing
)

// Roles lists every role, for metrics that export one series per role.
var Roles = []Role{RoleInit, RoleStandby, RoleActive, RoleFault}

var roleNames = [...]string{RoleInit: "init", RoleStandby: "standby", RoleActive: "active", RoleFault: "fault"}

func (r Role) String() string {
	if int(r) < len(roleNames) {
		return roleNames[r]
	}
	return "unknown"
}
