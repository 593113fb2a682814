//go:build unix

// Package quiet keeps drivers' diagnostics off the user's terminal.
package quiet

import (
	"os"
	"sync"
	"syscall"
)

// stderrMu serialises the redirection of file descriptor 2.
var stderrMu sync.Mutex

// Stderr runs f with the process's stderr pointed at /dev/null when
// quiet is set. Vulkan loaders and Mesa print diagnostics straight to fd 2
// while adapters are enumerated; this keeps them off the user's terminal
// unless --verbose asks for them.
func Stderr(quiet bool, f func()) {
	if !quiet {
		f()
		return
	}
	stderrMu.Lock()
	defer stderrMu.Unlock()
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		f()
		return
	}
	defer null.Close()
	saved, err := syscall.Dup(2)
	if err != nil {
		f()
		return
	}
	defer syscall.Close(saved)
	if err := syscall.Dup2(int(null.Fd()), 2); err != nil {
		f()
		return
	}
	defer syscall.Dup2(saved, 2)
	f()
}
