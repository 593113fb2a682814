package dawn

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors. Every error the package returns wraps one of them (or a
// context error), so callers match with errors.Is, never by text.
var (
	// ErrNotFound: no Dawn library at the explicit path, in the install
	// cache, or among the system's libraries.
	ErrNotFound = errors.New("dawn: no Dawn library found (install one with scripts/dawn.sh, or set " + EnvLibrary + ")")
	// ErrUnsupportedLibrary: the file exists but is not a Dawn this package
	// can use (wrong architecture, stripped, missing entry points, newer
	// glibc than this system's, ...).
	ErrUnsupportedLibrary = errors.New("dawn: unusable Dawn library")
	// ErrUnsupportedPlatform: this build has no Dawn runtime (it needs
	// Linux and cgo).
	ErrUnsupportedPlatform = errors.New("dawn: the Dawn runtime needs linux and cgo")
	// ErrNoAdapter: Dawn found no adapter for the requested backend.
	ErrNoAdapter = errors.New("dawn: no adapter")
	// ErrDeviceLost is wrapped by every error after the device was lost.
	ErrDeviceLost = errors.New("dawn: device lost")
	// ErrValidation, ErrOutOfMemory and ErrInternal are the WebGPU error
	// types, wrapped by *APIError.
	ErrValidation  = errors.New("dawn: validation error")
	ErrOutOfMemory = errors.New("dawn: out of memory")
	ErrInternal    = errors.New("dawn: internal error")
	// ErrCompile is wrapped by *CompileError: WGSL that does not compile.
	ErrCompile = errors.New("dawn: WGSL compilation failed")
	// ErrReleased: the object (or its device) was already released.
	ErrReleased = errors.New("dawn: use after release")
	// ErrBadArgument: an argument out of range (size, offset, alignment).
	ErrBadArgument = errors.New("dawn: bad argument")
)

// APIError is an error reported by Dawn through an error scope or the
// device's uncaptured-error callback.
type APIError struct {
	Op      string // what the package was doing, e.g. "create buffer x"
	Kind    error  // ErrValidation, ErrOutOfMemory or ErrInternal
	Message string // Dawn's text
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s: %v: %s", e.Op, e.Kind, strings.TrimSpace(e.Message))
}

// Unwrap returns the error's kind.
func (e *APIError) Unwrap() error { return e.Kind }

// CompileMessage is one message of the WGSL compiler.
type CompileMessage struct {
	Severity string // "error", "warning" or "info"
	Line     uint64 // 1-based; 0 when unknown
	Column   uint64
	Text     string
}

func (m CompileMessage) String() string {
	return fmt.Sprintf("%d:%d: %s: %s", m.Line, m.Column, m.Severity, m.Text)
}

// CompileError lists the compiler's messages for a module that failed.
type CompileError struct {
	Label    string
	Messages []CompileMessage
}

func (e *CompileError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "dawn: compile %s:", e.Label)
	for _, m := range e.Messages {
		b.WriteString("\n  ")
		b.WriteString(m.String())
	}
	return b.String()
}

// Unwrap returns ErrCompile.
func (e *CompileError) Unwrap() error { return ErrCompile }

// LostReason says why a device was lost (webgpu.h's WGPUDeviceLostReason).
type LostReason uint32

// Device-lost reasons.
const (
	LostUnknown        LostReason = 1
	LostDestroyed      LostReason = 2
	LostCancelled      LostReason = 3
	LostFailedCreation LostReason = 4
)

func (r LostReason) String() string {
	switch r {
	case LostUnknown:
		return "unknown"
	case LostDestroyed:
		return "destroyed"
	case LostCancelled:
		return "callback cancelled"
	case LostFailedCreation:
		return "failed creation"
	}
	return fmt.Sprintf("reason %d", uint32(r))
}

// DeviceLostError reports a lost device.
type DeviceLostError struct {
	Reason  LostReason
	Message string
}

func (e *DeviceLostError) Error() string {
	return fmt.Sprintf("dawn: device lost (%v): %s", e.Reason, strings.TrimSpace(e.Message))
}

// Unwrap returns ErrDeviceLost.
func (e *DeviceLostError) Unwrap() error { return ErrDeviceLost }
