package director

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"

	"github.com/directorlb/director/rootfile"
)

// loadOwned reads owned.json: the services the director created, which
// it removes when the config no longer names them, across restarts.
func (r *Reconciler) loadOwned() {
	if r.statePath == "" {
		return
	}
	// Only a file root wrote, in a directory only root can write, is
	// believed: its word deletes services, so one planted by another
	// user could empty the table. Refused, the record starts empty and
	// nothing the config does not name is removed.
	b, err := rootfile.ReadState(r.statePath, maxStateFile)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
		case errors.Is(err, rootfile.ErrInsecure) || errors.Is(err, rootfile.ErrTooLarge):
			r.log.Error("refusing the list of owned services: root alone did not write it; owning only what the config names and removing nothing on its word",
				"path", r.statePath, "err", err)
		default:
			r.log.Warn("cannot read the list of owned services; owning only what the config names", "path", r.statePath, "err", err)
		}
		return
	}
	var keys []SvcKey
	if err := json.Unmarshal(b, &keys); err != nil {
		r.log.Warn("ignoring a corrupt list of owned services", "path", r.statePath, "err", err)
		return
	}
	for _, k := range keys {
		r.owned[k] = true
	}
}

func (r *Reconciler) saveOwned() {
	if r.statePath == "" {
		return
	}
	keys := make([]SvcKey, 0, len(r.owned))
	for k := range r.owned {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareSvcKey)
	b, _ := json.Marshal(keys)
	// A missing directory is made root's alone (0700): ReadState trusts
	// no file in a directory others can write.
	err := os.MkdirAll(filepath.Dir(r.statePath), 0o700)
	if err == nil {
		err = rootfile.WriteFile(r.statePath, b, 0o600)
	}
	if err != nil {
		r.log.Warn("cannot save the list of owned services", "path", r.statePath, "err", err)
	}
}

// maxStateFile bounds owned.json and the drains file: ~60 bytes an entry,
// so room for far more services than IPVS holds.
const maxStateFile = 16 << 20
