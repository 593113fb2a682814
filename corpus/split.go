package corpus

import (
	"bytes"
	"hash/fnv"
	"unicode/utf8"
)

// InValidation reports whether the document with this path is held out:
// fnv1a64(path) % 100 < valPercent.
func InValidation(path string, valPercent int) bool {
	h := fnv.New64a()
	h.Write([]byte(path))
	return h.Sum64()%100 < uint64(valPercent)
}

// Cut returns d's pieces of at most maxDoc bytes (d itself when maxDoc is 0
// or d is short enough), numbered from d.Piece. The pieces share d.Data.
func Cut(d Doc, maxDoc int) []Doc {
	if maxDoc <= 0 || len(d.Data) <= maxDoc {
		return []Doc{d}
	}
	pieces := make([]Doc, 0, (len(d.Data)+maxDoc-1)/maxDoc)
	for off := 0; off < len(d.Data); off += maxDoc {
		end := min(off+maxDoc, len(d.Data))
		pieces = append(pieces, Doc{Path: d.Path, Piece: d.Piece + len(pieces), Data: d.Data[off:end:end]})
	}
	return pieces
}

// maxInvalidUTF8 is the fraction of bytes outside valid UTF-8 sequences that
// a text may have (a Latin-1 name in a comment, say) before it is binary.
const maxInvalidUTF8 = 0.01

// isBinary reports whether data has a NUL byte or more than maxInvalidUTF8
// of its bytes in invalid UTF-8.
func isBinary(data []byte) bool {
	if bytes.IndexByte(data, 0) >= 0 {
		return true
	}
	if utf8.Valid(data) {
		return false
	}
	bad := 0
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		if r == utf8.RuneError && n == 1 {
			bad++
		}
		i += n
	}
	return float64(bad) > maxInvalidUTF8*float64(len(data))
}
