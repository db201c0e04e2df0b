package checks

import (
	"bytes"
	"crypto/md5" // keepalived's HTTP_GET digest: a page's fingerprint, not a secret
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
)

// maxDigestBody bounds the body an http digest is taken of: the digest is
// of the whole body, so a longer one fails rather than be cut.
const maxDigestBody = 1 << 20

// bodyDigest is the digest the body of an http or https check must have.
type bodyDigest struct {
	alg  string // md5, sha256
	want []byte
}

// parseBodyDigest reads "md5:HEX" or "sha256:HEX", as config writes it.
func parseBodyDigest(s string) (*bodyDigest, error) {
	alg, sum, _ := strings.Cut(s, ":")
	size := map[string]int{"md5": md5.Size, "sha256": sha256.Size}[alg]
	b, err := hex.DecodeString(sum)
	if size == 0 || err != nil || len(b) != size {
		return nil, fmt.Errorf("digest %q: want md5:HEX or sha256:HEX", s)
	}
	return &bodyDigest{alg: alg, want: b}, nil
}

func (d *bodyDigest) check(body []byte) error {
	var h hash.Hash
	if d.alg == "md5" {
		h = md5.New()
	} else {
		h = sha256.New()
	}
	h.Write(body)
	got := h.Sum(nil)
	if !bytes.Equal(got, d.want) {
		return fmt.Errorf("body digest %s:%x, want %s:%x (%d bytes)", d.alg, got, d.alg, d.want, len(body))
	}
	return nil
}
