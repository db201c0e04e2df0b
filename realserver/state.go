package realserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"github.com/directorlb/director/rootfile"
)

// DefaultState is where up records what it changed, for down. Under /run
// because it describes the running kernel: a reboot forgets both.
const DefaultState = "/run/realserver/state.json"

// stateVersion is written into every state file; a file of another
// version is refused rather than half-understood.
const stateVersion = 1

// maxStateSize bounds what is read: a real state file is a few hundred
// bytes, and a wrong path must not cost memory.
const maxStateSize = 1 << 20

// State is what up did, in order: what down undoes, last first.
type State struct {
	Version   int          `json:"version"`
	Mode      Mode         `json:"mode"`
	VIPs      []netip.Addr `json:"vips"`
	Interface string       `json:"interface,omitempty"`
	Changes   []Change     `json:"changes"`
}

// Spec is what the state was made for.
func (s *State) Spec() Spec {
	return Spec{Mode: s.Mode, VIPs: s.VIPs, Interface: s.Interface}
}

// ChangeKind says what a Change did.
type ChangeKind string

const (
	SysctlSet   ChangeKind = "sysctl"       // Sysctl went from Old to New
	AddrAdded   ChangeKind = "address"      // Address was added to Link
	LinkCreated ChangeKind = "link-created" // Link was created
	LinkRaised  ChangeKind = "link-up"      // Link was down and was set up
)

// Change is one thing up changed, with what it was before.
type Change struct {
	Kind    ChangeKind `json:"kind"`
	Sysctl  Sysctl     `json:"sysctl,omitempty"`
	Old     string     `json:"old,omitempty"`
	New     string     `json:"new,omitempty"`
	Link    string     `json:"link,omitempty"`
	Address netip.Addr `json:"address,omitzero"`
}

// target is what the change is to, so that a later up can tell that it
// already holds the original value of something.
func (c Change) target() string {
	switch c.Kind {
	case SysctlSet:
		return "sysctl " + string(c.Sysctl)
	case AddrAdded:
		return "address " + c.Address.String() + " " + c.Link
	default:
		return string(c.Kind) + " " + c.Link
	}
}

// ErrDamagedState is matched by a state file that cannot be understood.
var ErrDamagedState = errors.New("damaged state file")

// Store is the state file at one path.
type Store struct{ Path string }

// Load reads the state, or nil if there is none. Only a state file root
// wrote, in a directory only root can write, is read: down undoes what it
// says, so one planted by another user could make down delete an
// interface or rewrite sysctls. Anything else is refused, changing
// nothing; a FIFO there is refused without blocking.
func (s Store) Load() (*State, error) {
	data, err := rootfile.ReadState(s.Path, maxStateSize)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return nil, nil
	case errors.Is(err, rootfile.ErrTooLarge):
		return nil, fmt.Errorf("state %s: larger than %d bytes: %w", s.Path, maxStateSize, ErrDamagedState)
	case errors.Is(err, rootfile.ErrInsecure):
		return nil, fmt.Errorf("refusing the state file, nothing was changed: %w", err)
	case err != nil:
		return nil, fmt.Errorf("state: %w", err)
	}
	return parseState(s.Path, data)
}

func parseState(path string, data []byte) (*State, error) {
	if len(data) > maxStateSize {
		return nil, fmt.Errorf("state %s: larger than %d bytes: %w", path, maxStateSize, ErrDamagedState)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("state %s: %w: %v", path, ErrDamagedState, err)
	}
	if st.Version != stateVersion {
		return nil, fmt.Errorf("state %s: version %d, this realserver reads %d: %w", path, st.Version, stateVersion, ErrDamagedState)
	}
	if err := st.Spec().Validate(); err != nil {
		return nil, fmt.Errorf("state %s: %w: %v", path, ErrDamagedState, err)
	}
	for i, c := range st.Changes {
		if err := c.validate(); err != nil {
			return nil, fmt.Errorf("state %s: change %d: %w: %v", path, i, ErrDamagedState, err)
		}
	}
	return &st, nil
}

func (c Change) validate() error {
	switch c.Kind {
	case SysctlSet:
		if !validSysctl(c.Sysctl) {
			return fmt.Errorf("sysctl %q is not one this helper sets", c.Sysctl)
		}
		if c.Old == "" || c.New == "" {
			return errors.New("sysctl change without old and new values")
		}
	case AddrAdded:
		if !c.Address.IsValid() || !validLinkName(c.Link) {
			return errors.New("address change without an address and a link")
		}
	case LinkCreated, LinkRaised:
		if !validLinkName(c.Link) {
			return fmt.Errorf("%s change without a link", c.Kind)
		}
	default:
		return fmt.Errorf("unknown kind %q", c.Kind)
	}
	return nil
}

// validSysctl keeps a damaged or edited state file from making down write
// anywhere but the per-interface IPv4 settings the helper owns.
func validSysctl(s Sysctl) bool {
	rest, ok := strings.CutPrefix(string(s), "net/ipv4/conf/")
	i := strings.LastIndexByte(rest, '/')
	if !ok || i < 0 {
		return false
	}
	dev, name := rest[:i], rest[i+1:]
	switch name {
	case "arp_ignore", "arp_announce", "rp_filter":
	default:
		return false
	}
	return dev == "all" || validLinkName(dev)
}

// validLinkName is the kernel's dev_valid_name.
func validLinkName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	for _, r := range s {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// Save writes the state atomically, as Load trusts it: root's, mode 0644,
// in a directory created 0755; a crash leaves the old file or the new
// one, never half of either.
func (s Store) Save(st *State) error {
	st.Version = stateVersion
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	data = append(data, '\n')
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := rootfile.WriteFile(s.Path, data, 0o644); err != nil {
		return fmt.Errorf("state: save %s: %w", s.Path, err)
	}
	return nil
}

// Remove deletes the state file; one already gone is fine.
func (s Store) Remove() error {
	if err := os.Remove(s.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("state: %w", err)
	}
	return nil
}

// CheckWritable fails, leaving nothing behind, where Save would.
func (s Store) CheckWritable() error {
	dir := filepath.Dir(s.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	f, err := os.CreateTemp(dir, ".state-*")
	if err != nil {
		return fmt.Errorf("state directory: %w", err)
	}
	f.Close()
	return os.Remove(f.Name())
}
