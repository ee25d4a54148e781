package app

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// lockFileName is the file in the data dir whose lock says a node uses
// the dir; it holds that node's pid.
const lockFileName = "taisen.lock"

// ErrDataDirInUse is returned (wrapped) when another node holds the data
// dir.
var ErrDataDirInUse = errors.New("in use by another taisen node")

// dirLock is a held data dir lock.
type dirLock struct{ f *os.File }

// release unlocks the dir (closing the file drops the lock). The file is
// left in place: removing it could race a node that just opened it.
func (l *dirLock) release() error { return l.f.Close() }

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("lock file: %w", err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		return fmt.Errorf("lock file: %w", err)
	}
	return nil
}

// inUseError names the dir and, when the lock file says, the other node's
// pid.
func inUseError(dir, path string) error {
	pid := "unknown pid"
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			pid = "pid " + s
		}
	}
	return fmt.Errorf("%w: %s is locked by %s (%s); stop that node or give this one its own --data", ErrDataDirInUse, dir, pid, path)
}
