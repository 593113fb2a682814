// Package outfile writes a command's output files all or nothing, and
// never loses a file that was there before.
//
// Every output goes to a temporary file in its target's directory and is
// renamed over the target only once every output has been written and
// synced. A target that existed is kept as a hard link until all renames
// succeeded, so a failure part way through the renames puts every earlier
// target back as it was (where the file system has no hard links, a
// failure between two renames, which needs a second fault, can leave the
// earlier outputs replaced). Output through a symbolic link replaces the
// file the link points to and keeps the link. Targets that are not regular
// files (directories, device nodes such as /dev/null, sockets, pipes) are
// refused, and so are two paths, outputs or inputs, that resolve to the
// same file, compared by os.SameFile rather than by spelling.
package outfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Errors, wrapped in an *Error that names the flag and the path.
var (
	// ErrEmpty: the flag names no path.
	ErrEmpty = errors.New("no path given")
	// ErrNoDir: the target's directory does not exist.
	ErrNoDir = errors.New("directory does not exist")
	// ErrIsDir: the target is a directory.
	ErrIsDir = errors.New("is a directory")
	// ErrNotRegular: the target exists and is not a regular file (a
	// device node, a pipe, a socket) or is a dangling symbolic link.
	ErrNotRegular = errors.New("not a regular file")
	// ErrSameFile: two paths resolve to the same file.
	ErrSameFile = errors.New("same file")
)

// Path is a file named by a command-line flag, such as --out o.npy.
type Path struct {
	Flag string // without dashes, e.g. "out"
	Name string
}

// String is the flag and path as the user typed them (the path alone
// without a flag).
func (p Path) String() string {
	if p.Flag == "" {
		return p.Name
	}
	return "--" + p.Flag + " " + p.Name
}

// Error is a problem with one path.
type Error struct {
	Path
	Err error
	// Other is the other path of an ErrSameFile error.
	Other *Path
}

func (e *Error) Error() string {
	if e.Other != nil {
		return fmt.Sprintf("%s and %s are the same file", e.Other, e.Path)
	}
	if e.Name == "" {
		return fmt.Sprintf("--%s: %v", e.Flag, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// target is an output path resolved for writing.
type target struct {
	Path
	real string      // the file to replace: symbolic links resolved
	info fs.FileInfo // the existing file, or nil
}

// resolve checks an output path and resolves it.
func resolve(p Path) (target, error) {
	t := target{Path: p}
	fail := func(err error) (target, error) { return t, &Error{Path: p, Err: err} }
	if p.Name == "" {
		return fail(ErrEmpty)
	}
	if strings.HasSuffix(p.Name, string(filepath.Separator)) {
		return fail(ErrIsDir)
	}
	info, err := os.Stat(p.Name) // follows symbolic links
	switch {
	case err == nil:
		if info.IsDir() {
			return fail(ErrIsDir)
		}
		if !info.Mode().IsRegular() {
			return fail(fmt.Errorf("%w (%s); coreattn writes only regular files", ErrNotRegular, kind(info.Mode())))
		}
		if t.real, err = filepath.EvalSymlinks(p.Name); err != nil {
			return fail(err)
		}
		t.info = info
	case errors.Is(err, fs.ErrNotExist):
		if li, lerr := os.Lstat(p.Name); lerr == nil && li.Mode()&fs.ModeSymlink != 0 {
			return fail(fmt.Errorf("%w: a symbolic link to a file that does not exist", ErrNotRegular))
		}
		dir, err := filepath.EvalSymlinks(filepath.Dir(p.Name))
		if errors.Is(err, fs.ErrNotExist) {
			return fail(fmt.Errorf("%w: %s", ErrNoDir, filepath.Dir(p.Name)))
		}
		if err != nil {
			return fail(err)
		}
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return fail(fmt.Errorf("%w: %s is not a directory", ErrNoDir, filepath.Dir(p.Name)))
		}
		t.real = filepath.Join(dir, filepath.Base(p.Name))
	default:
		return fail(pathErr(err))
	}
	if abs, err := filepath.Abs(t.real); err == nil {
		t.real = abs
	}
	return t, nil
}

// kind names a non-regular file mode.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "mode " + m.String()
}

// same reports whether targets a and b are the same file.
func same(a, b target) bool {
	if a.info != nil && b.info != nil {
		return os.SameFile(a.info, b.info)
	}
	return a.info == nil && b.info == nil && a.real == b.real
}

// Check checks, before any work is done, that every output can be written
// (see the package documentation) and that no two paths among the outputs
// and the inputs are the same file. Inputs that do not exist are left to
// the reader to report. Empty inputs are skipped.
func Check(inputs, outputs []Path) error {
	ts, err := resolveAll(outputs)
	if err != nil {
		return err
	}
	for _, in := range inputs {
		if in.Name == "" {
			continue
		}
		info, err := os.Stat(in.Name)
		if err != nil {
			continue
		}
		for _, t := range ts {
			if t.info != nil && os.SameFile(info, t.info) {
				return &Error{Path: t.Path, Err: ErrSameFile, Other: &in}
			}
		}
	}
	return nil
}

// resolveAll resolves outputs and checks that no two are the same file.
func resolveAll(outputs []Path) ([]target, error) {
	ts := make([]target, len(outputs))
	for i, o := range outputs {
		t, err := resolve(o)
		if err != nil {
			return nil, err
		}
		for _, prev := range ts[:i] {
			if same(prev, t) {
				return nil, &Error{Path: o, Err: ErrSameFile, Other: &prev.Path}
			}
		}
		ts[i] = t
	}
	return ts, nil
}

// Output is one file to write: where, and what.
type Output struct {
	Path
	// Write writes the file's content.
	Write func(w io.Writer) error
}

// WriteAll writes every output, or none: see the package documentation. It
// checks the targets again as Check does (without the inputs).
func WriteAll(outputs []Output) error {
	return writer{rename: os.Rename}.writeAll(outputs)
}

// writer holds what tests replace.
type writer struct {
	rename func(oldpath, newpath string) error
}

// staged is an output written to its temporary file.
type staged struct {
	target
	tmp    string
	backup string // hard link to the previous file, or ""
	done   bool   // renamed into place
}

func (w writer) writeAll(outputs []Output) (err error) {
	paths := make([]Path, len(outputs))
	for i, o := range outputs {
		paths[i] = o.Path
	}
	ts, err := resolveAll(paths)
	if err != nil {
		return err
	}
	st := make([]*staged, len(ts))
	defer func() {
		if err != nil {
			w.rollBack(st)
		}
		for _, s := range st {
			if s != nil && s.backup != "" {
				os.Remove(s.backup)
			}
		}
	}()
	for i, t := range ts {
		st[i] = &staged{target: t}
		if st[i].tmp, err = writeTemp(t, outputs[i].Write); err != nil {
			return &Error{Path: t.Path, Err: err}
		}
	}
	for _, s := range st {
		if s.info != nil {
			s.backup = link(s.real)
		}
		if err := w.rename(s.tmp, s.real); err != nil {
			return &Error{Path: s.Path, Err: pathErr(err)}
		}
		s.done = true
	}
	return nil
}

// rollBack removes the temporary files and puts every target already
// replaced back as it was: the previous file from its backup, or no file.
func (w writer) rollBack(st []*staged) {
	for _, s := range st {
		switch {
		case s == nil:
		case !s.done:
			if s.tmp != "" {
				os.Remove(s.tmp)
			}
		case s.backup != "":
			if w.rename(s.backup, s.real) == nil {
				s.backup = ""
			}
		case s.info == nil:
			os.Remove(s.real)
		}
	}
}

// writeTemp writes a temporary file beside t's file with write, synced and
// with t's permissions (0644 for a new file), and returns its name.
func writeTemp(t target, write func(io.Writer) error) (name string, err error) {
	dir, base := filepath.Split(t.real)
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return "", pathErr(err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err := write(f); err != nil {
		return "", err
	}
	perm := fs.FileMode(0o644)
	if t.info != nil {
		perm = t.info.Mode().Perm()
	}
	if err := f.Chmod(perm); err != nil {
		return "", pathErr(err)
	}
	if err := f.Sync(); err != nil {
		return "", pathErr(err)
	}
	if err := f.Close(); err != nil {
		return "", pathErr(err)
	}
	return f.Name(), nil
}

// link makes a hard link to file beside it and returns its name, or ""
// where the file system has no hard links.
func link(file string) string {
	dir, base := filepath.Split(file)
	for range 10 {
		name := filepath.Join(dir, fmt.Sprintf(".%s.bak-%d", base, rand.Uint32()))
		err := os.Link(file, name)
		if err == nil {
			return name
		}
		if !errors.Is(err, fs.ErrExist) {
			return ""
		}
	}
	return ""
}

// pathErr strips the operation and path from an *fs.PathError, whose path
// is a temporary name the user never gave; the cause stays for errors.Is.
func pathErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
