package corpus

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Defaults of [Options].
const (
	DefaultValPercent    = 2        // percent of documents held out, the CLI's default
	DefaultMaxFileBytes  = 64 << 20 // larger files (or JSONL lines) are skipped
	DefaultMaxTotalBytes = 8 << 30  // a larger corpus is a LimitError
)

// Doc is one document: its identity and its bytes (the tokens).
type Doc struct {
	// Path is the document's identity, used by the validation split: the
	// slash-separated path below the source root, or "NAME.jsonl:LINE".
	Path string
	// Piece numbers the pieces of a document cut at Options.MaxDoc, from 0.
	Piece int
	// Data is the document's bytes; pieces share the file's buffer.
	Data []byte
}

// Options configure [Load]. The zero value holds out nothing, cuts nothing
// and uses the default size limits.
type Options struct {
	// ValPercent (0..100) of the documents, chosen by path, are held out for
	// validation.
	ValPercent int
	// MaxDoc > 0 cuts documents longer than MaxDoc bytes into independent
	// pieces of at most MaxDoc bytes; 0 keeps them whole.
	MaxDoc int
	// MaxFileBytes bounds one file or JSONL line; larger ones are skipped.
	// 0 means DefaultMaxFileBytes.
	MaxFileBytes int64
	// MaxTotalBytes bounds the documents kept; 0 means DefaultMaxTotalBytes.
	MaxTotalBytes int64
	// Exts, when not empty, keeps only the files of a directory source whose
	// names end in one of these suffixes (".txt"). The Go source always
	// keeps ".go" files.
	Exts []string
}

func (o Options) withDefaults() (Options, error) {
	if o.ValPercent < 0 || o.ValPercent > 100 {
		return o, badOption("validation percent %d is outside 0..100", o.ValPercent)
	}
	if o.MaxDoc < 0 {
		return o, badOption("max-doc %d is negative", o.MaxDoc)
	}
	if o.MaxFileBytes < 0 || o.MaxTotalBytes < 0 {
		return o, badOption("size limits %d, %d are negative", o.MaxFileBytes, o.MaxTotalBytes)
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.MaxTotalBytes == 0 {
		o.MaxTotalBytes = DefaultMaxTotalBytes
	}
	return o, nil
}

// Corpus is a loaded, split and cut set of documents.
type Corpus struct {
	Identity Identity
	Train    []Doc // in reading order: lexical per directory (JSONL: line order)
	Val      []Doc // in reading order
	Stats    Stats
}

// Identity names a corpus for a checkpoint, so that a resumed run can check
// that it packs the same documents.
type Identity struct {
	Source     string `json:"source"`      // "go1.26.8 GOROOT/src", "dir:ABS", "jsonl:ABS"
	Files      int    `json:"files"`       // files or records kept
	Bytes      int64  `json:"bytes"`       // their bytes
	SHA256     string `json:"sha256"`      // over every kept file's path, length and bytes, in order
	ValPercent int    `json:"val_percent"` // the split
	MaxDoc     int    `json:"max_doc"`     // the cutting
}

// Load reads a source ("" for the Go distribution, a directory, or a JSONL
// file; see the package documentation), splits and cuts its documents.
func Load(ctx context.Context, source string, opt Options) (*Corpus, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	l := &loader{opt: opt, hash: sha256.New(), stats: Stats{Skipped: map[Reason]int{}}}
	var id string
	switch {
	case source == "":
		root, version, err := GoSrc(ctx)
		if err != nil {
			return nil, err
		}
		id = version + " GOROOT/src"
		err = l.walk(ctx, root, []string{".go"})
		if err != nil {
			return nil, err
		}
	default:
		fi, err := os.Stat(source)
		if err != nil {
			return nil, fmt.Errorf("corpus: data source: %w", err)
		}
		abs, err := filepath.Abs(source)
		if err != nil {
			return nil, fmt.Errorf("corpus: data source: %w", err)
		}
		if fi.IsDir() {
			id = "dir:" + abs
			err = l.walk(ctx, source, opt.Exts)
		} else {
			id = "jsonl:" + abs
			err = l.readJSONL(ctx, source)
		}
		if err != nil {
			return nil, err
		}
	}
	c := l.finish(id)
	if len(c.Train) == 0 {
		return nil, &EmptyError{Source: source, Stats: c.Stats}
	}
	return c, nil
}

// loader accumulates the documents of one Load.
type loader struct {
	opt   Options
	docs  []Doc // whole documents, in reading order
	total int64
	hash  hash.Hash
	stats Stats
}

// add keeps a document unless it is empty or binary.
func (l *loader) add(name, path string, data []byte) error {
	switch {
	case len(data) == 0:
		l.skip(path, Empty, nil)
		return nil
	case isBinary(data):
		l.skip(path, Binary, nil)
		return nil
	}
	if l.total+int64(len(data)) > l.opt.MaxTotalBytes {
		return &LimitError{Path: name, What: "total corpus size", Limit: l.opt.MaxTotalBytes}
	}
	l.total += int64(len(data))
	l.docs = append(l.docs, Doc{Path: path, Data: data})
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(path)))
	l.hash.Write(n[:])
	l.hash.Write([]byte(path))
	binary.LittleEndian.PutUint64(n[:], uint64(len(data)))
	l.hash.Write(n[:])
	l.hash.Write(data)
	return nil
}

func (l *loader) skip(path string, r Reason, err error) {
	l.stats.Skipped[r]++
	l.stats.Skips = append(l.stats.Skips, Skip{Path: path, Reason: r, Err: err})
}

// finish splits and cuts the documents read.
func (l *loader) finish(source string) *Corpus {
	c := &Corpus{Stats: l.stats}
	c.Stats.Files = len(l.docs)
	c.Stats.Bytes = l.total
	for _, d := range l.docs {
		val := InValidation(d.Path, l.opt.ValPercent)
		for _, p := range Cut(d, l.opt.MaxDoc) {
			if val {
				c.Val = append(c.Val, p)
			} else {
				c.Train = append(c.Train, p)
			}
		}
	}
	c.Stats.Train = countOf(c.Train)
	c.Stats.Val = countOf(c.Val)
	c.Identity = Identity{
		Source:     source,
		Files:      len(l.docs),
		Bytes:      l.total,
		SHA256:     hex.EncodeToString(l.hash.Sum(nil)),
		ValPercent: l.opt.ValPercent,
		MaxDoc:     l.opt.MaxDoc,
	}
	return c
}

// walk reads every file below root whose name ends in one of exts (all
// files when exts is empty), in lexical order, skipping hidden names.
func (l *loader) walk(ctx context.Context, root string, exts []string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if p == root {
			if err != nil {
				return fmt.Errorf("corpus: data source: %w", err)
			}
			return nil
		}
		rel, rerr := filepath.Rel(root, p)
		if rerr != nil {
			return fmt.Errorf("corpus: %s: %w", p, rerr)
		}
		rel = filepath.ToSlash(rel)
		if err != nil {
			l.skip(rel, Unreadable, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if d.IsDir() || !hasExt(d.Name(), exts) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			fi, err := os.Stat(p)
			if err != nil {
				l.skip(rel, Unreadable, err)
				return nil
			}
			if !fi.Mode().IsRegular() {
				l.skip(rel, NotRegular, nil)
				return nil
			}
		} else if !d.Type().IsRegular() {
			l.skip(rel, NotRegular, nil)
			return nil
		}
		data, err := readBounded(p, l.opt.MaxFileBytes)
		switch {
		case errors.Is(err, errTooLarge):
			l.skip(rel, TooLarge, err)
			return nil
		case err != nil:
			l.skip(rel, Unreadable, err)
			return nil
		}
		return l.add(p, rel, data)
	})
}

func hasExt(name string, exts []string) bool {
	if len(exts) == 0 {
		return true
	}
	for _, e := range exts {
		if strings.HasSuffix(name, e) {
			return true
		}
	}
	return false
}

// errTooLarge is wrapped by readBounded for a file over the limit.
var errTooLarge = errors.New("larger than the per-document limit")

// readBounded reads a file of at most max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if fi.Size() > max {
		return nil, fmt.Errorf("%d bytes: %w of %d", fi.Size(), errTooLarge, max)
	}
	// The file may grow while we read; the limit holds whatever it does.
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("more than %d bytes: %w", max, errTooLarge)
	}
	return data, nil
}
