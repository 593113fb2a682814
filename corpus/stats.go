package corpus

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Reason says why a file or record was skipped.
type Reason int

// Reasons for skipping.
const (
	Unreadable Reason = iota // open, stat or read failed
	Binary                   // a NUL byte, or more than 1% invalid UTF-8
	Empty                    // no bytes
	TooLarge                 // over Options.MaxFileBytes
	NotRegular               // a device, socket, pipe or link to a directory
	NoText                   // a JSONL record without "text"
	numReasons
)

var reasonNames = [numReasons]string{"unreadable", "binary", "empty", "too large", "not a regular file", "no text"}

func (r Reason) String() string {
	if r < 0 || r >= numReasons {
		return fmt.Sprintf("Reason(%d)", int(r))
	}
	return reasonNames[r]
}

// MarshalText writes the reason's name, so Stats marshals to readable JSON.
func (r Reason) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// Skip records one skipped file or record.
type Skip struct {
	Path   string // as in Doc.Path
	Reason Reason
	Err    error // the read error, if any
}

// Count is a number of documents and their bytes.
type Count struct {
	Docs  int   `json:"docs"`
	Bytes int64 `json:"bytes"`
}

func countOf(docs []Doc) Count {
	c := Count{Docs: len(docs)}
	for _, d := range docs {
		c.Bytes += int64(len(d.Data))
	}
	return c
}

// Stats describe what Load read.
type Stats struct {
	Files   int            `json:"files"` // files or records kept, before cutting
	Bytes   int64          `json:"bytes"` // their bytes
	Train   Count          `json:"train"` // training documents (pieces)
	Val     Count          `json:"val"`   // validation documents (pieces)
	Skipped map[Reason]int `json:"skipped"`
	Skips   []Skip         `json:"-"` // every skip, in reading order
}

// String is a one-line summary.
func (s Stats) String() string {
	return fmt.Sprintf("%d files, %s; train %d documents (%s), validation %d (%s); %s",
		s.Files, byteSize(s.Bytes), s.Train.Docs, byteSize(s.Train.Bytes),
		s.Val.Docs, byteSize(s.Val.Bytes), s.skipSummary())
}

func (s Stats) skipSummary() string {
	total := 0
	var parts []string
	for r := Reason(0); r < numReasons; r++ {
		if n := s.Skipped[r]; n > 0 {
			total += n
			parts = append(parts, fmt.Sprintf("%d %s", n, r))
		}
	}
	if total == 0 {
		return "none skipped"
	}
	return fmt.Sprintf("%d skipped: %s", total, strings.Join(parts, ", "))
}

func byteSize(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// LengthStats summarise document lengths in bytes (tokens).
type LengthStats struct {
	N             int
	Min, Max      int
	Mean          float64
	P50, P90, P99 int   // nearest-rank quantiles
	Log2Hist      []int // Log2Hist[i] counts lengths in [2^i, 2^(i+1)); lengths 0 in [0]
	Top1Percent   int64 // bytes in the longest 1% of the documents (at least one): the attention tail
}

// Lengths computes the length statistics of docs.
func Lengths(docs []Doc) LengthStats {
	var s LengthStats
	if len(docs) == 0 {
		return s
	}
	n := make([]int, len(docs))
	var sum int64
	for i, d := range docs {
		n[i] = len(d.Data)
		sum += int64(n[i])
		b := 0
		if n[i] > 0 {
			b = bits.Len(uint(n[i])) - 1
		}
		for len(s.Log2Hist) <= b {
			s.Log2Hist = append(s.Log2Hist, 0)
		}
		s.Log2Hist[b]++
	}
	slices.Sort(n)
	rank := func(q float64) int { // nearest rank: the smallest x with at least q of the lengths <= x
		i := int(math.Ceil(q*float64(len(n)))) - 1
		return n[max(0, min(i, len(n)-1))]
	}
	s.N, s.Min, s.Max = len(n), n[0], n[len(n)-1]
	s.Mean = float64(sum) / float64(len(n))
	s.P50, s.P90, s.P99 = rank(0.5), rank(0.9), rank(0.99)
	top := max(1, len(n)/100)
	for _, x := range n[len(n)-top:] {
		s.Top1Percent += int64(x)
	}
	return s
}

// String is a one-line summary.
func (s LengthStats) String() string {
	return fmt.Sprintf("%d documents, bytes min %d, p50 %d, mean %.0f, p90 %d, p99 %d, max %d",
		s.N, s.Min, s.P50, s.Mean, s.P90, s.P99, s.Max)
}
