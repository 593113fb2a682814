// Package corpus turns text into the token batches the coreattn model trains
// on: it loads documents, splits them deterministically into training and
// validation sets, cuts long ones, and packs them into steps of exactly T
// byte tokens with document boundaries (cu_seqlens).
//
// # Sources
//
// [Load] reads one of three sources, each document being raw bytes:
//
//   - "" (the default): the .go files of the Go distribution, GOROOT/src
//     (about 7,700 files from a few bytes to 3 MB). GOROOT is runtime.GOROOT()
//     when its src directory exists, else the output of `go env GOROOT`.
//   - a directory: every regular file below it, recursively, in lexical order
//     (hidden files and directories, whose names start with ".", are left
//     out; symbolic links to files are followed, to directories not).
//   - a file: JSON Lines, one record per line with a string field "text".
//     Blank lines are ignored; records without text (missing, null or "") are
//     skipped and counted; a line that is not a JSON object, or whose text is
//     not a string, is a [*LineError] naming the file and line.
//
// A file is skipped and counted, never fatal, when it cannot be read, is
// empty, is larger than [Options.MaxFileBytes] (default 64 MiB), or is binary:
// it contains a NUL byte or more than 1% of its bytes are not valid UTF-8.
// Reading stops with a [*LimitError] naming the file once the documents kept
// exceed [Options.MaxTotalBytes] (default 8 GiB), so a wrong --data cannot
// exhaust memory. A source with no usable document is an [*EmptyError].
//
// # Identity, split and cutting
//
// A document's Path is its identity: the slash-separated path relative to the
// source root ("net/http/server.go"), or "NAME.jsonl:LINE" (base name of the
// file, 1-based line) for a JSONL record. A document is held out for
// validation iff fnv1a64(Path) % 100 < ValPercent, so the split depends only
// on the paths, not on the machine or on the other documents. Documents are
// then cut into independent pieces of at most [Options.MaxDoc] bytes; the
// pieces of one document stay on its side of the split.
//
// # Packing
//
// A [Packer] walks the training documents in a seeded permutation per epoch
// (epoch e uses the permutation drawn from seed+e by a PCG generator and a
// Fisher-Yates shuffle written here, so it does not change with the Go
// release) and fills each step with exactly T tokens. A document that does
// not fit in what is left of a step is cut: the part that fits ends the step
// as a document of its own, the rest opens the next step (positions restart
// at 0 in each part). Steps run on across epoch boundaries. The packer's
// [Position] (epoch, index in the epoch's order, offset inside that document)
// is all the state there is: a packer set to a saved position produces the
// same batches as the one that saved it. [ValIter] packs the validation
// documents the same way, in reading order and once, its last batch shorter.
//
// # batches.bin
//
// The batches of a run can be written for the PyTorch twin with a
// [BatchWriter] and read back with a [BatchReader]. The file is a sequence of
// steps with no header, every number a little-endian int32:
//
//	T, B, cu_seqlens[0..B] (B+1 values: 0 = c0 < c1 < ... < cB = T), tokens[0..T-1] (0..255)
package corpus
