package checkpoint

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// The files of a checkpoint directory.
const (
	ModelFile  = "model.safetensors"
	OptimFile  = "optim.safetensors"
	ConfigFile = "config.json"
)

// ops are the steps of a save that a crash can interrupt; tests replace
// them to stop a save at each one.
type ops interface {
	rename(oldpath, newpath string) error
	sync(f *os.File) error
	syncDir(dir string) error
}

type osOps struct{}

func (osOps) rename(a, b string) error   { return os.Rename(a, b) }
func (osOps) sync(f *os.File) error      { return f.Sync() }
func (o osOps) syncDir(dir string) error { return syncDir(dir) }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeAtomic replaces path with what write produces.
func writeAtomic(o ops, path string, write func(io.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	tmp := f.Name()
	// CreateTemp makes the file private; a checkpoint file is as readable as any other.
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := writeSynced(o, f, write); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := o.rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := o.syncDir(dir); err != nil {
		return fmt.Errorf("checkpoint: syncing %s: %w", dir, err)
	}
	return nil
}

// Save writes a checkpoint directory atomically (see the package
// documentation): model.safetensors from model, optim.safetensors from optim
// unless optim is nil, and config.json from config. Nothing is written when
// a tensor or the config is invalid.
func Save(dir string, config any, model, optim []Tensor) error {
	return save(osOps{}, dir, config, model, optim)
}

func save(o ops, dir string, config any, model, optim []Tensor) error {
	dir = filepath.Clean(dir)
	cfg, err := json.MarshalIndent(config, "", "  ")
	if err != nil {
		return errorf(filepath.Join(dir, ConfigFile), "", ErrConfig, "%v", err)
	}
	cfg = append(cfg, '\n')
	if err := check(filepath.Join(dir, ModelFile), model); err != nil {
		return err
	}
	if err := check(filepath.Join(dir, OptimFile), optim); err != nil {
		return err
	}
	parent, old := filepath.Dir(dir), oldDir(dir)
	if err := restore(o, dir); err != nil {
		return err
	}
	exists, err := replaceable(dir)
	if err != nil {
		return err
	}
	removeTemps(dir)
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".tmp-")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	fail := func(err error) error {
		os.RemoveAll(tmp)
		return err
	}
	// MkdirTemp makes the directory private; a checkpoint is as readable as any other.
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fail(fmt.Errorf("checkpoint: %w", err))
	}
	files := []struct {
		name  string
		write func(io.Writer) error
	}{
		{ModelFile, func(w io.Writer) error { return Encode(w, model) }},
		{OptimFile, func(w io.Writer) error { return Encode(w, optim) }},
		{ConfigFile, func(w io.Writer) error { _, err := w.Write(cfg); return err }},
	}
	for _, f := range files {
		if f.name == OptimFile && optim == nil {
			continue
		}
		file, err := os.OpenFile(filepath.Join(tmp, f.name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fail(fmt.Errorf("checkpoint: %w", err))
		}
		if err := writeSynced(o, file, f.write); err != nil {
			return fail(err)
		}
	}
	if err := o.syncDir(tmp); err != nil {
		return fail(fmt.Errorf("checkpoint: %w", err))
	}
	if exists {
		// A leftover .old beside a complete checkpoint is stale.
		if err := os.RemoveAll(old); err != nil {
			return fail(fmt.Errorf("checkpoint: %w", err))
		}
		if err := o.rename(dir, old); err != nil {
			return fail(fmt.Errorf("checkpoint: %w", err))
		}
	}
	if err := o.rename(tmp, dir); err != nil {
		if exists {
			o.rename(old, dir) // put the old checkpoint back; if this fails too, readers find .old
		}
		return fail(fmt.Errorf("checkpoint: %w", err))
	}
	if err := o.syncDir(parent); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("checkpoint: saved %s but could not remove the previous one: %w", dir, err)
	}
	return nil
}

// oldDir is where Save moves the previous checkpoint while it swaps.
func oldDir(dir string) string {
	return filepath.Join(filepath.Dir(dir), "."+filepath.Base(dir)+".old")
}

// restore moves a previous checkpoint back into place if a save stopped
// between its two renames.
func restore(o ops, dir string) error {
	if _, err := os.Lstat(dir); !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	old := oldDir(dir)
	if _, err := os.Stat(old); err != nil {
		return nil
	}
	if err := o.rename(old, dir); err != nil {
		return fmt.Errorf("checkpoint: restoring %s: %w", old, err)
	}
	return nil
}

// replaceable reports whether dir exists, and fails unless it is absent or
// a directory holding only checkpoint files.
func replaceable(dir string) (bool, error) {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	if !fi.IsDir() {
		return false, errorf(dir, "", ErrNotCheckpoint, "it is not a directory; not replaced")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("checkpoint: %w", err)
	}
	for _, e := range entries {
		switch e.Name() {
		case ModelFile, OptimFile, ConfigFile:
		default:
			return false, errorf(dir, "", ErrNotCheckpoint, "it holds %q besides checkpoint files; not replaced", e.Name())
		}
	}
	return true, nil
}

// removeTemps deletes what saves to dir that stopped early left behind.
func removeTemps(dir string) {
	matches, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), "."+globEscape(filepath.Base(dir))+".tmp-*"))
	for _, m := range matches {
		os.RemoveAll(m)
	}
}

func globEscape(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `*`, `\*`, `?`, `\?`, `[`, `\[`)
	return r.Replace(s)
}

// resolve returns the directory holding the checkpoint saved to dir: dir,
// or its .old copy after a save that stopped between its renames.
func resolve(dir string) string {
	dir = filepath.Clean(dir)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		if old := oldDir(dir); isDir(old) {
			return old
		}
	}
	return dir
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// ReadConfig decodes the checkpoint's config.json into v.
func ReadConfig(dir string, v any) error {
	p := filepath.Join(resolve(dir), ConfigFile)
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return errorf(p, "", ErrConfig, "%v", err)
	}
	return nil
}

// ReadModel reads the checkpoint's parameters; see [Decode] for want.
func ReadModel(dir string, want []Spec) ([]Tensor, error) {
	return ReadFile(filepath.Join(resolve(dir), ModelFile), want)
}

// ReadOptim reads the checkpoint's optimiser state; see [Decode] for want.
// It fails with ErrNoOptim when the checkpoint has none.
func ReadOptim(dir string, want []Spec) ([]Tensor, error) {
	d := resolve(dir)
	p := filepath.Join(d, OptimFile)
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) && isDir(d) {
		return nil, errorf(d, "", ErrNoOptim, "")
	}
	return ReadFile(p, want)
}
