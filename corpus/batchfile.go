package corpus

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// maxBatchTokens bounds T in a packer and in a batches.bin record, so that a
// corrupt file cannot ask for a huge allocation.
const maxBatchTokens = 1 << 28

// BatchWriter writes batches.bin records; see the package documentation.
type BatchWriter struct {
	w     *bufio.Writer
	steps int
	buf   []byte
}

// NewBatchWriter returns a writer to w; call Flush after the last batch.
func NewBatchWriter(w io.Writer) *BatchWriter {
	return &BatchWriter{w: bufio.NewWriterSize(w, 1<<20)}
}

// Write appends one step's batch, which must pass Batch.Check.
func (w *BatchWriter) Write(b Batch) error {
	if err := b.Check(); err != nil {
		return fmt.Errorf("corpus: batches: step %d: %w", w.steps, err)
	}
	w.buf = w.buf[:0]
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(b.Tokens)))
	w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(len(b.CuSeqlens)-1))
	for _, c := range b.CuSeqlens {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(c))
	}
	for _, t := range b.Tokens {
		w.buf = binary.LittleEndian.AppendUint32(w.buf, uint32(t))
	}
	if _, err := w.w.Write(w.buf); err != nil {
		return fmt.Errorf("corpus: batches: step %d: %w", w.steps, err)
	}
	w.steps++
	return nil
}

// Steps is the number of batches written.
func (w *BatchWriter) Steps() int { return w.steps }

// Flush writes any buffered data to the underlying writer.
func (w *BatchWriter) Flush() error { return w.w.Flush() }

// BatchReader reads batches.bin records.
type BatchReader struct {
	r      *bufio.Reader
	step   int
	offset int64
}

// NewBatchReader returns a reader of r.
func NewBatchReader(r io.Reader) *BatchReader {
	return &BatchReader{r: bufio.NewReaderSize(r, 1<<20)}
}

// Read returns the next batch; io.EOF after the last complete one, or a
// [*FormatError] for a truncated or malformed record.
func (r *BatchReader) Read() (Batch, error) {
	fail := func(err error) (Batch, error) {
		return Batch{}, &FormatError{Step: r.step, Offset: r.offset, Err: err}
	}
	var head [8]byte
	n, err := io.ReadFull(r.r, head[:])
	switch {
	case n == 0 && err == io.EOF:
		return Batch{}, io.EOF
	case err != nil:
		return fail(readErr(err, "header"))
	}
	t := int32(binary.LittleEndian.Uint32(head[:4]))
	nb := int32(binary.LittleEndian.Uint32(head[4:]))
	if t <= 0 || t > maxBatchTokens || nb <= 0 || nb > t {
		return fail(fmt.Errorf("%w: T = %d, B = %d (want 1 <= B <= T <= %d)", ErrBadBatch, t, nb, maxBatchTokens))
	}
	body := make([]int32, int(nb)+1+int(t))
	if err := binary.Read(r.r, binary.LittleEndian, body); err != nil {
		return fail(readErr(err, fmt.Sprintf("body of %d int32", len(body))))
	}
	b := Batch{CuSeqlens: body[: nb+1 : nb+1], Tokens: body[nb+1:]}
	if err := b.Check(); err != nil {
		return fail(err)
	}
	r.step++
	r.offset += 8 + 4*int64(len(body))
	return b, nil
}

func readErr(err error, what string) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: the file ends inside the %s", ErrTruncated, what)
	}
	return err
}
