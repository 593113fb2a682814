package corpus

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// readJSONL reads one record per line; see the package documentation.
func (l *loader) readJSONL(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("corpus: data source: %w", err)
	}
	defer f.Close()
	base := filepath.Base(path)
	r := bufio.NewReaderSize(f, 1<<20)
	for line := 1; ; line++ {
		if line%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		b, long, err := readLine(r, l.opt.MaxFileBytes)
		if err == io.EOF && len(b) == 0 && !long {
			return nil
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("corpus: %s:%d: %w", path, line, err)
		}
		id := base + ":" + strconv.Itoa(line)
		if long {
			l.skip(id, TooLarge, fmt.Errorf("line %w", errTooLarge))
		} else if len(bytes.TrimSpace(b)) > 0 {
			text, ok, jerr := recordText(b)
			switch {
			case jerr != nil:
				return &LineError{Path: path, Line: line, Err: jerr}
			case !ok:
				l.skip(id, NoText, nil)
			default:
				if aerr := l.add(path+":"+strconv.Itoa(line), id, text); aerr != nil {
					return aerr
				}
			}
		}
		if err == io.EOF {
			return nil
		}
	}
}

// readLine returns the next line without its newline. A line longer than max
// is consumed and reported as long, its bytes dropped.
func readLine(r *bufio.Reader, max int64) (line []byte, long bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if !long {
			if int64(len(line)+len(chunk)) > max+1 { // +1: the newline
				long, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimSuffix(line, []byte("\n")), long, err
	}
}

// errNoObject is what recordText reports for a line holding another JSON value.
var errNoObject = errors.New("not a JSON object")

// recordText returns the record's "text" field; ok is false when it is
// missing, null or empty.
func recordText(b []byte) (text []byte, ok bool, err error) {
	var rec map[string]json.RawMessage
	if err := json.Unmarshal(b, &rec); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, false, fmt.Errorf("%w (a JSON %s)", errNoObject, te.Value)
		}
		return nil, false, fmt.Errorf("invalid JSON: %v", err)
	}
	raw, found := rec["text"]
	if !found || string(raw) == "null" {
		return nil, false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, false, fmt.Errorf(`field "text" is not a string: %.40s`, raw)
	}
	return []byte(s), s != "", nil
}
