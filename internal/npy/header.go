package npy

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// header is a parsed .npy header dictionary.
type header struct {
	descr   string
	fortran bool
	shape   []int
}

// parseHeader parses the header dictionary of a .npy file the way NumPy
// reads it (numpy.lib.format): a Python dict literal with exactly the keys
// 'descr' (a string), 'fortran_order' (True or False) and 'shape' (a tuple
// of non-negative ints, Python 2's 12L allowed), in any order, with any
// spacing, single or double quotes and trailing commas. A structured
// dtype (a list as descr) is refused. Errors wrap ErrHeader.
func parseHeader(text string) (header, error) {
	p := &lexer{s: text}
	var h header
	seen := map[string]bool{}
	if !p.eat('{') {
		return h, p.errorf("want a dictionary, found %s", p.peekText())
	}
	for !p.eat('}') {
		key, err := p.str()
		if err != nil {
			return h, err
		}
		if seen[key] {
			return h, p.errorf("key %q appears twice", key)
		}
		seen[key] = true
		if !p.eat(':') {
			return h, p.errorf("want ':' after key %q, found %s", key, p.peekText())
		}
		switch key {
		case "descr":
			if h.descr, err = p.str(); err != nil {
				return h, fmt.Errorf("%w (descr must be a string; structured dtypes are not supported)", err)
			}
		case "fortran_order":
			if h.fortran, err = p.boolean(); err != nil {
				return h, err
			}
		case "shape":
			if h.shape, err = p.tuple(); err != nil {
				return h, err
			}
		default:
			return h, p.errorf("unexpected key %q (want descr, fortran_order and shape)", key)
		}
		if !p.eat(',') {
			if !p.eat('}') {
				return h, p.errorf("want ',' or '}' after the value of %q, found %s", key, p.peekText())
			}
			break
		}
	}
	p.space()
	if p.i != len(p.s) {
		return h, p.errorf("text after the dictionary: %s", p.peekText())
	}
	for _, k := range []string{"descr", "fortran_order", "shape"} {
		if !seen[k] {
			return h, p.errorf("key %q is missing", k)
		}
	}
	return h, nil
}

// lexer reads the Python literals of a header.
type lexer struct {
	s string
	i int
}

func (p *lexer) errorf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrHeader, fmt.Sprintf(format, args...))
}

// space skips Python whitespace.
func (p *lexer) space() {
	for p.i < len(p.s) && strings.IndexByte(" \t\n\r\f\v", p.s[p.i]) >= 0 {
		p.i++
	}
}

// eat skips space and then c, reporting whether c was there.
func (p *lexer) eat(c byte) bool {
	p.space()
	if p.i < len(p.s) && p.s[p.i] == c {
		p.i++
		return true
	}
	return false
}

// peekText describes what comes next, for errors.
func (p *lexer) peekText() string {
	p.space()
	if p.i >= len(p.s) {
		return "the end of the header"
	}
	return strconv.Quote(p.s[p.i:min(len(p.s), p.i+12)])
}

// str reads a quoted string without escapes (NumPy's keys and dtype
// strings have none; a backslash is refused rather than misread).
func (p *lexer) str() (string, error) {
	p.space()
	if p.i >= len(p.s) || (p.s[p.i] != '\'' && p.s[p.i] != '"') {
		return "", p.errorf("want a quoted string, found %s", p.peekText())
	}
	q := p.s[p.i]
	end := strings.IndexByte(p.s[p.i+1:], q)
	if end < 0 {
		return "", p.errorf("unterminated string")
	}
	v := p.s[p.i+1 : p.i+1+end]
	if strings.ContainsAny(v, "\\\n") {
		return "", p.errorf("string %q has an escape or a newline", v)
	}
	p.i += end + 2
	return v, nil
}

// boolean reads True or False.
func (p *lexer) boolean() (bool, error) {
	p.space()
	for _, b := range []struct {
		word string
		v    bool
	}{{"True", true}, {"False", false}} {
		if strings.HasPrefix(p.s[p.i:], b.word) && !p.identAt(p.i+len(b.word)) {
			p.i += len(b.word)
			return b.v, nil
		}
	}
	return false, p.errorf("fortran_order must be True or False, found %s", p.peekText())
}

// identAt reports whether an identifier character is at i.
func (p *lexer) identAt(i int) bool {
	if i >= len(p.s) {
		return false
	}
	c := p.s[i]
	return c == '_' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// tuple reads a tuple of non-negative integers: (), (n,), (a, b, ...),
// with an optional trailing comma and Python 2's L suffix.
func (p *lexer) tuple() ([]int, error) {
	if !p.eat('(') {
		return nil, p.errorf("shape must be a tuple, found %s", p.peekText())
	}
	shape := []int{}
	for !p.eat(')') {
		d, err := p.dim()
		if err != nil {
			return nil, err
		}
		shape = append(shape, d)
		if !p.eat(',') {
			if !p.eat(')') {
				return nil, p.errorf("want ',' or ')' in the shape, found %s", p.peekText())
			}
			break
		}
	}
	return shape, nil
}

// dim reads one dimension: a decimal integer, maybe with an L suffix.
func (p *lexer) dim() (int, error) {
	p.space()
	start := p.i
	if p.i < len(p.s) && (p.s[p.i] == '-' || p.s[p.i] == '+') {
		p.i++
	}
	for p.i < len(p.s) && '0' <= p.s[p.i] && p.s[p.i] <= '9' {
		p.i++
	}
	text := p.s[start:p.i]
	if p.i < len(p.s) && (p.s[p.i] == 'L' || p.s[p.i] == 'l') {
		p.i++
	}
	if p.identAt(p.i) || p.i < len(p.s) && p.s[p.i] == '.' {
		return 0, p.errorf("shape dimension %s is not an integer", p.peekTextAt(start))
	}
	d, err := strconv.ParseInt(text, 10, 64)
	if err != nil {
		if text == "" || text == "-" || text == "+" {
			return 0, p.errorf("shape dimension %s is not an integer", p.peekTextAt(start))
		}
		return 0, fmt.Errorf("%w: shape dimension %s is out of range", ErrShape, text)
	}
	if d < 0 {
		return 0, fmt.Errorf("%w: shape dimension %d is negative", ErrShape, d)
	}
	if d > math.MaxInt {
		return 0, fmt.Errorf("%w: shape dimension %d is out of range", ErrShape, d)
	}
	return int(d), nil
}

func (p *lexer) peekTextAt(i int) string {
	return strconv.Quote(p.s[i:min(len(p.s), i+12)])
}

// dtype is an element type a file may hold.
type dtype struct {
	kind  byte // 'f' float, 'i' signed, 'u' unsigned integer
	size  int  // bytes
	order binary.ByteOrder
	name  string // NumPy's name, for messages
}

// parseDescr reads a header's descr: a type string such as '<f4', '=f4',
// '|i1', '>u8', a NumPy name such as 'float32', or a one-letter code such
// as 'f' or 'd', as numpy.dtype reads them. Byte order '=' and no prefix
// are this machine's order (little-endian on every platform Go targets
// here); '|' is only for one-byte types. Only floating-point and integer
// types are known; others fail with ErrDType.
func parseDescr(descr string) (dtype, error) {
	var dt dtype
	s := descr
	order := byte('=')
	if len(s) > 0 && strings.IndexByte("<>=|", s[0]) >= 0 {
		order, s = s[0], s[1:]
	}
	if named, ok := dtypeNames[s]; ok {
		dt = named
	} else if len(s) >= 2 && strings.IndexByte("fiu", s[0]) >= 0 {
		n, err := strconv.Atoi(s[1:])
		if err != nil || s[1] == '+' || s[1] == '-' {
			return dt, fmt.Errorf("%w %q", ErrDType, descr)
		}
		dt = dtype{kind: s[0], size: n}
	} else {
		return dt, fmt.Errorf("%w %q", ErrDType, descr)
	}
	switch {
	case dt.kind == 'f' && (dt.size == 2 || dt.size == 4 || dt.size == 8):
		dt.name = "float" + strconv.Itoa(8*dt.size)
	case dt.kind == 'i' && (dt.size == 1 || dt.size == 2 || dt.size == 4 || dt.size == 8):
		dt.name = "int" + strconv.Itoa(8*dt.size)
	case dt.kind == 'u' && (dt.size == 1 || dt.size == 2 || dt.size == 4 || dt.size == 8):
		dt.name = "uint" + strconv.Itoa(8*dt.size)
	default:
		return dt, fmt.Errorf("%w %q", ErrDType, descr)
	}
	switch order {
	case '>':
		dt.order = binary.BigEndian
	case '|':
		if dt.size != 1 {
			return dt, fmt.Errorf("%w %q: byte order '|' on a %d-byte type", ErrDType, descr, dt.size)
		}
		fallthrough
	default:
		dt.order = binary.LittleEndian
	}
	return dt, nil
}

// dtypeNames are the type names and one-letter codes numpy.dtype reads,
// with the sizes they have on the 64-bit little-endian platforms coreattn
// runs on.
var dtypeNames = map[string]dtype{
	"float16": {kind: 'f', size: 2}, "float32": {kind: 'f', size: 4}, "float64": {kind: 'f', size: 8},
	"half": {kind: 'f', size: 2}, "single": {kind: 'f', size: 4}, "double": {kind: 'f', size: 8},
	"e": {kind: 'f', size: 2}, "f": {kind: 'f', size: 4}, "d": {kind: 'f', size: 8},
	"int8": {kind: 'i', size: 1}, "int16": {kind: 'i', size: 2}, "int32": {kind: 'i', size: 4}, "int64": {kind: 'i', size: 8},
	"uint8": {kind: 'u', size: 1}, "uint16": {kind: 'u', size: 2}, "uint32": {kind: 'u', size: 4}, "uint64": {kind: 'u', size: 8},
	"b": {kind: 'i', size: 1}, "h": {kind: 'i', size: 2}, "i": {kind: 'i', size: 4}, "l": {kind: 'i', size: 8}, "q": {kind: 'i', size: 8},
	"B": {kind: 'u', size: 1}, "H": {kind: 'u', size: 2}, "I": {kind: 'u', size: 4}, "L": {kind: 'u', size: 8}, "Q": {kind: 'u', size: 8},
}
