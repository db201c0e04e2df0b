package announce

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/directorlb/director/rootfile"
)

// nodeDrain is drain-node's record, kept under state_dir so that a
// drained director stays drained through a restart or a reboot: it was
// taken out for a reason (maintenance) the restart does not undo.
type nodeDrain struct {
	Drained bool      `json:"drained"`
	At      time.Time `json:"at"`
}

const maxNodeDrainFile = 4 << 10

// loadNodeDrain reads the record. A file that is not root's, in a
// directory only root can write, is not trusted; neither is one that
// does not parse. Either way the director announces, and says so: a
// record nobody can vouch for must not keep a director out silently, nor
// put a drained one back silently.
func loadNodeDrain(path string) (bool, error) {
	b, err := rootfile.ReadState(path, maxNodeDrainFile)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	var rec nodeDrain
	if err := json.Unmarshal(b, &rec); err != nil {
		return false, fmt.Errorf("%s: %w", path, err)
	}
	return rec.Drained, nil
}

func saveNodeDrain(path string, drained bool, now time.Time) error {
	b, err := json.Marshal(nodeDrain{Drained: drained, At: now.UTC()})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return rootfile.WriteFile(path, b, 0o600)
}
