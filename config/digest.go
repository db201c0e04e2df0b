package config

import (
	"crypto/sha256"
	"encoding/json"
)

// ServicesDigest summarises what the services section serves, so the two
// directors of a pair can tell whether their configs agree. Positions in
// the file are left out: two files that differ only in layout or comments
// serve the same.
func (c *Config) ServicesDigest() [16]byte {
	b, err := json.Marshal(c.Services)
	if err != nil {
		// Every field is a plain value; Marshal cannot fail on them.
		b = []byte(err.Error())
	}
	sum := sha256.Sum256(b)
	var d [16]byte
	copy(d[:], sum[:])
	return d
}
