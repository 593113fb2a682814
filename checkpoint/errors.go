package checkpoint

import (
	"errors"
	"fmt"
)

// Errors wrapped by [*Error].
var (
	ErrTruncated     = errors.New("truncated")
	ErrHeader        = errors.New("malformed safetensors header")
	ErrDType         = errors.New("dtype is not F32")
	ErrShape         = errors.New("shape mismatch")
	ErrMissing       = errors.New("missing tensor")
	ErrUnexpected    = errors.New("unexpected tensor")
	ErrConfig        = errors.New("malformed config")
	ErrNoOptim       = errors.New("no optimiser state was saved")
	ErrBadTensor     = errors.New("invalid tensor")
	ErrNotCheckpoint = errors.New("not a checkpoint directory")
)

// Error reports a problem with one checkpoint file or tensor.
type Error struct {
	Path   string // the file or directory
	Tensor string // the tensor's name, or ""
	Err    error
}

func (e *Error) Error() string {
	if e.Tensor != "" {
		return fmt.Sprintf("checkpoint: %s: tensor %s: %v", e.Path, e.Tensor, e.Err)
	}
	return fmt.Sprintf("checkpoint: %s: %v", e.Path, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

func errorf(path, tensor string, sentinel error, format string, args ...any) error {
	err := sentinel
	if format != "" {
		err = fmt.Errorf("%w: "+format, append([]any{sentinel}, args...)...)
	}
	return &Error{Path: path, Tensor: tensor, Err: err}
}
