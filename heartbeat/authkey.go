package heartbeat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"syscall"
)

// ErrKeyFileInsecure is wrapped by ReadAuthKey's error when the key
// file could have been read or written by someone other than root.
var ErrKeyFileInsecure = errors.New("key file must be owned by root with mode 0600")

const (
	// MinAuthKeyLen is the shortest key ReadAuthKey accepts.
	MinAuthKeyLen = 16
	// authKeyMaxLen bounds what ReadAuthKey reads: a key is a line of
	// text, and a huge file there is a mistake.
	authKeyMaxLen = 4096
)

// ReadAuthKey reads the heartbeat's shared key from path. The file must
// be a regular file owned by root (uid 0), with no permission bits for
// group or others: 0600 and 0400 are accepted (and so is 0700, which
// grants nothing more to anyone else). The key is the file's content
// without one trailing newline ("\n" or "\r\n"), at least MinAuthKeyLen
// bytes.
//
// The checks are made on the opened file, so the file checked is the
// file read even if path is replaced meanwhile.
func ReadAuthKey(path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO planted at path must not hang; reading
	// a regular file ignores it.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("auth key: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("auth key: %w", err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("auth key %s: cannot tell its owner", path)
	}
	if err := authKeyFileProblem(path, fi.Mode(), st.Uid); err != nil {
		return nil, err
	}
	b, err := io.ReadAll(io.LimitReader(f, authKeyMaxLen+1))
	if err != nil {
		return nil, fmt.Errorf("auth key: %w", err)
	}
	if len(b) > authKeyMaxLen {
		return nil, fmt.Errorf("auth key %s: longer than %d bytes", path, authKeyMaxLen)
	}
	return authKeyFromContent(path, b)
}

// authKeyFileProblem says what is wrong with a key file of this mode
// and owner, or nil.
func authKeyFileProblem(path string, mode fs.FileMode, uid uint32) error {
	if !mode.IsRegular() {
		return fmt.Errorf("auth key %s: not a regular file (mode %s): %w", path, mode, ErrKeyFileInsecure)
	}
	if uid != 0 || mode.Perm()&0o077 != 0 {
		return fmt.Errorf("auth key %s: owned by uid %d with mode %04o; run `chown root:root %s && chmod 0600 %s`: %w",
			path, uid, mode.Perm(), path, path, ErrKeyFileInsecure)
	}
	return nil
}

// authKeyFromContent trims one trailing newline and checks the length.
func authKeyFromContent(path string, b []byte) ([]byte, error) {
	if k, ok := bytes.CutSuffix(b, []byte("\r\n")); ok {
		b = k
	} else {
		b = bytes.TrimSuffix(b, []byte("\n"))
	}
	if len(b) < MinAuthKeyLen {
		return nil, fmt.Errorf("auth key %s: %d bytes, need at least %d (e.g. `head -c 32 /dev/urandom | base64 > %s`)",
			path, len(b), MinAuthKeyLen, path)
	}
	return b, nil
}
