package corpus

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// GoSrc returns the source directory of the Go distribution (GOROOT/src) and
// its version ("go1.26.8", or "go" when GOROOT has no VERSION file). GOROOT
// is runtime.GOROOT() when its src directory exists, else `go env GOROOT`.
func GoSrc(ctx context.Context) (dir, version string, err error) {
	//lint:ignore SA1019 the binary's own GOROOT is the documented first choice; `go env GOROOT` is the fallback
	root := runtime.GOROOT()
	if !isDir(filepath.Join(root, "src")) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		out, gerr := exec.CommandContext(ctx, "go", "env", "GOROOT").Output()
		if gerr != nil {
			return "", "", fmt.Errorf("corpus: the Go distribution's sources: runtime.GOROOT() %q has no src and `go env GOROOT` failed (%v); pass a data directory or JSONL file", root, gerr)
		}
		root = strings.TrimSpace(string(out))
		if !isDir(filepath.Join(root, "src")) {
			return "", "", fmt.Errorf("corpus: the Go distribution's sources: %s has no src directory; pass a data directory or JSONL file", root)
		}
	}
	version = "go"
	if b, err := os.ReadFile(filepath.Join(root, "VERSION")); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		if sc.Scan() && strings.HasPrefix(sc.Text(), "go") {
			version = strings.TrimSpace(sc.Text())
		}
	}
	return filepath.Join(root, "src"), version, nil
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
