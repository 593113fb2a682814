// Package checkpoint saves and loads model checkpoints: float32 tensors in
// safetensors files plus a JSON config, written so that a crash at any
// moment leaves a complete checkpoint behind.
//
// # Layout
//
// A checkpoint is a directory holding
//
//	model.safetensors  every parameter, F32, under its canonical name
//	optim.safetensors  optimiser state (m.<name>, v.<name>), when saved
//	config.json        the caller's config value, marshalled with encoding/json
//
// The package is generic: it takes any JSON-marshalable config and ordered
// lists of [Tensor]; it knows nothing of the model beyond [MomentSpecs]'
// naming of the AdamW moments.
//
// # safetensors
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of
// JSON ({"name": {"dtype": "F32", "shape": [...], "data_offsets": [b, e]},
// ..., "__metadata__": {"format": "pt"}}, padded with spaces to a multiple of
// 8), then the tensors' little-endian bytes back to back, offsets relative to
// the end of the header. Files are written and parsed with
// github.com/nlpodyssey/safetensors; the writer orders tensors by name, as
// the Rust implementation does, so Python's safetensors, PyTorch and
// scripts/coreattn_io.py read them.
//
// # Atomic saves
//
// [Save] writes the new checkpoint into a fresh temporary directory next to
// the target (".NAME.tmp-*", same file system), fsyncs every file and the
// directory, then moves the old checkpoint aside (".NAME.old"), renames the
// new one into place, fsyncs the parent and only then deletes the old one.
// At every instant a complete checkpoint exists: under NAME, or, after a
// crash between the two renames, under .NAME.old, where the readers of this
// package find it (and the next Save puts it back first). Save refuses to
// replace a directory holding anything but checkpoint files, so a wrong path
// cannot delete other data. Saves to one directory must not run concurrently.
//
// # Errors
//
// A malformed checkpoint is a one-line [*Error] naming the file and, where it
// applies, the tensor; it wraps one of ErrTruncated, ErrHeader, ErrDType,
// ErrShape, ErrMissing, ErrUnexpected, ErrConfig (match with errors.Is).
package checkpoint
