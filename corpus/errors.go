package corpus

import (
	"errors"
	"fmt"
)

// ErrEmpty is matched (errors.Is) by an [*EmptyError].
var ErrEmpty = errors.New("corpus: no usable documents")

// EmptyError reports a source that yielded no training document.
type EmptyError struct {
	Source string // the source as given to Load ("" is the Go distribution)
	Stats  Stats  // what was read and skipped
}

func (e *EmptyError) Error() string {
	return fmt.Sprintf("corpus: %s: no training documents (%s)", sourceName(e.Source), e.Stats.skipSummary())
}

// Is reports whether target is ErrEmpty.
func (e *EmptyError) Is(target error) bool { return target == ErrEmpty }

// LineError reports a JSONL line that is not a usable record.
type LineError struct {
	Path string // the JSONL file
	Line int    // 1-based
	Err  error
}

func (e *LineError) Error() string {
	return fmt.Sprintf("corpus: %s:%d: %v", e.Path, e.Line, e.Err)
}

func (e *LineError) Unwrap() error { return e.Err }

// LimitError reports that reading Path would take the corpus past a limit.
type LimitError struct {
	Path  string // the file being read when the limit was crossed
	What  string // which limit: "total corpus size"
	Limit int64  // bytes
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("corpus: %s: %s exceeds the limit of %d bytes", e.Path, e.What, e.Limit)
}

// ErrBadOption is wrapped by the errors that reject an argument (a
// tokens-per-step, percentage or position out of range).
var ErrBadOption = errors.New("corpus: invalid argument")

func badOption(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadOption}, args...)...)
}

// Errors wrapped by a [*FormatError].
var (
	ErrTruncated = errors.New("truncated")
	ErrBadBatch  = errors.New("malformed batch")
)

// FormatError reports a malformed batches.bin file.
type FormatError struct {
	Step   int   // 0-based step whose record is malformed
	Offset int64 // byte offset of the step's record in the file
	Err    error // wraps ErrTruncated, ErrBadBatch or the read error
}

func (e *FormatError) Error() string {
	return fmt.Sprintf("corpus: batches: step %d (byte %d): %v", e.Step, e.Offset, e.Err)
}

func (e *FormatError) Unwrap() error { return e.Err }

func sourceName(src string) string {
	if src == "" {
		return "Go distribution (GOROOT/src)"
	}
	return src
}
