package app

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// loadOrCreateSecret reads the secret in dir/name, or generates nbytes of
// randomness, stores it (mode 0600) and reports created.
func loadOrCreateSecret(dir, name string, nbytes int) (secret string, path string, created bool, err error) {
	path = filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 16 {
			return "", path, false, fmt.Errorf("secret file %s is shorter than 16 characters; delete it to generate a new one", path)
		}
		if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
			return "", path, false, fmt.Errorf("secret file %s has mode %v; run chmod 600 %s", path, fi.Mode().Perm(), path)
		}
		return s, path, false, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", path, false, fmt.Errorf("read secret: %w", err)
	}
	raw := make([]byte, nbytes)
	if _, err := rand.Read(raw); err != nil {
		return "", path, false, fmt.Errorf("generate secret: %w", err)
	}
	s := base64.RawURLEncoding.EncodeToString(raw)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", path, false, fmt.Errorf("store secret: %w", err)
	}
	if _, err := f.WriteString(s + "\n"); err != nil {
		f.Close()
		return "", path, false, fmt.Errorf("store secret: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", path, false, fmt.Errorf("store secret: %w", err)
	}
	return s, path, true, nil
}
