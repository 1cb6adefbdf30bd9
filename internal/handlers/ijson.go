package handlers

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// Bounds on the shape of JSON we accept from clients. A JWK Set with keys
// holding x5c chains is four levels deep inside the registration body; no
// registration member lists anywhere near 100 values.
const (
	maxJSONDepth    = 10
	maxJSONArrayLen = 100
)

// smallObjectMembers is how many member names of one object checkIJSON
// compares pairwise before it puts them in a map instead.
const smallObjectMembers = 32

var (
	errJSONNUL  = errors.New("a string holds U+0000")
	errJSONFFFD = errors.New("a string holds U+FFFD, as an invalid escape decodes")
	errJSONEOF  = errors.New("not valid JSON: the text ends inside a value")
)

// ijsonFrame is one open object or array while checkIJSON walks a text.
type ijsonFrame struct {
	object bool
	// name is the raw content of the latest member name (objects) or of
	// the array's own, for errors; empty at the top level.
	nameStart, nameEnd int
	n                  int                 // elements so far (arrays)
	keys               int                 // where this object's names start in the list of names
	names              map[string]struct{} // an object's names once it has many
}

// ijsonName is the raw content of a member name, between its quotes.
type ijsonName struct {
	start, end int
	escaped    bool
}

// checkIJSON returns an error unless b is one JSON value in the I-JSON
// profile of RFC 7493 and of a shape encoding/json handles cheaply. It
// refuses invalid UTF-8 (§2.1); strings holding U+0000, or U+FFFD, which
// encoding/json puts in place of a lone surrogate escape (§2.1 forbids
// surrogates; neither character has a use in metadata); a member name
// repeated in any object (§2.3), which parsers resolve differently; a
// number beyond a double (§2.2); nesting deeper than maxJSONDepth; an array
// longer than maxJSONArrayLen; and data after the value.
//
// It is a single pass over b that allocates nothing unless b is refused or
// holds objects of many members (more than smallObjectMembers in one, or
// twice that in those open at once): it runs on every access token the
// gate has not seen before. Errors come in the order
// encoding/json's Decoder.Token would meet them.
func checkIJSON(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("the JSON text is not valid UTF-8")
	}
	var (
		stack   [maxJSONDepth]ijsonFrame
		depth   int
		nameBuf [2 * smallObjectMembers]ijsonName
		names   = nameBuf[:0]
	)
	i := skipJSONSpace(b, 0)
	if i == len(b) {
		return errors.New("there is no JSON value")
	}
	// The loop is at the start of a value (i at its first byte, after
	// whitespace) or, with after set, just past one.
	after := false
	for {
		if !after {
			c := b[i]
			var top *ijsonFrame
			if depth > 0 {
				top = &stack[depth-1]
			}
			switch {
			case c == '{' || c == '[':
				if err := countJSONElement(b, top); err != nil {
					return err
				}
				if depth == maxJSONDepth {
					return fmt.Errorf("the JSON value is nested deeper than %d levels", maxJSONDepth)
				}
				f := &stack[depth]
				*f = ijsonFrame{object: c == '{', keys: len(names)}
				if top != nil {
					f.nameStart, f.nameEnd = top.nameStart, top.nameEnd
				}
				depth++
				if i = skipJSONSpace(b, i+1); i == len(b) {
					return errJSONEOF
				}
				// An empty container: the closing bracket is dealt
				// with as after a value.
				if c == '[' {
					after = b[i] == ']'
					continue
				}
				if b[i] == '}' {
					after = true
					continue
				}
				var err error
				if i, names, err = checkJSONMember(b, i, f, names); err != nil {
					return err
				}
				continue
			case c == '"':
				end, bad, _, err := scanJSONString(b, i)
				if err != nil {
					return err
				}
				if err := countJSONElement(b, top); err != nil {
					return err
				}
				if bad != nil {
					if top != nil && top.nameEnd > top.nameStart {
						return fmt.Errorf("member %q: %w", unquoteJSON(b[top.nameStart:top.nameEnd]), bad)
					}
					return bad
				}
				i = end
			case c == '-' || '0' <= c && c <= '9':
				end, plain, err := scanJSONNumber(b, i)
				if err != nil {
					return err
				}
				if err := countJSONElement(b, top); err != nil {
					return err
				}
				// §2.2: a number must fit an IEEE 754 double, or
				// encoding/json fails to decode it later. Without an
				// exponent, one of at most 308 integer digits does.
				if !plain {
					if _, err := strconv.ParseFloat(string(b[i:end]), 64); err != nil {
						return fmt.Errorf("the number %.20s is too large for a double", string(b[i:end]))
					}
				}
				i = end
			case c == 't' || c == 'f' || c == 'n':
				end, err := scanJSONLiteral(b, i)
				if err != nil {
					return err
				}
				if err := countJSONElement(b, top); err != nil {
					return err
				}
				i = end
			default:
				return jsonSyntaxError(b, i, "looking for beginning of value")
			}
			after = true
			continue
		}
		// Just past a value: what closes or continues its container.
		if depth == 0 {
			if skipJSONSpace(b, i) != len(b) {
				return errors.New("there is data after the JSON value")
			}
			return nil
		}
		if i = skipJSONSpace(b, i); i == len(b) {
			return errJSONEOF
		}
		top := &stack[depth-1]
		switch c := b[i]; {
		case c == ',':
			if i = skipJSONSpace(b, i+1); i == len(b) {
				return errJSONEOF
			}
			if top.object {
				var err error
				if i, names, err = checkJSONMember(b, i, top, names); err != nil {
					return err
				}
			}
			after = false
		case c == '}' && top.object, c == ']' && !top.object:
			names = names[:top.keys]
			depth--
			i++
		case top.object:
			return jsonSyntaxError(b, i, "after object key:value pair")
		default:
			return jsonSyntaxError(b, i, "after array element")
		}
	}
}

// checkJSONMember checks the member name at b[i] of the object f and the
// colon after it, and returns the index of the member's value, after
// whitespace. names lists the names of the open objects, f's last.
func checkJSONMember(b []byte, i int, f *ijsonFrame, names []ijsonName) (int, []ijsonName, error) {
	if b[i] != '"' {
		return i, names, jsonSyntaxError(b, i, "looking for beginning of object key string")
	}
	end, bad, escaped, err := scanJSONString(b, i)
	if err != nil {
		return i, names, err
	}
	name := ijsonName{start: i + 1, end: end - 1, escaped: escaped}
	if bad != nil {
		return i, names, fmt.Errorf("member name %q: %w", unquoteJSON(b[name.start:name.end]), bad)
	}
	if f.names != nil {
		s := unquoteJSON(b[name.start:name.end])
		if _, dup := f.names[s]; dup {
			return i, names, fmt.Errorf("member %q is repeated", s)
		}
		f.names[s] = struct{}{}
	} else {
		for _, o := range names[f.keys:] {
			if sameJSONName(b, o, name) {
				return i, names, fmt.Errorf("member %q is repeated", unquoteJSON(b[name.start:name.end]))
			}
		}
		if len(names)-f.keys < smallObjectMembers {
			names = append(names, name)
		} else {
			f.names = make(map[string]struct{}, 2*smallObjectMembers)
			for _, o := range names[f.keys:] {
				f.names[unquoteJSON(b[o.start:o.end])] = struct{}{}
			}
			f.names[unquoteJSON(b[name.start:name.end])] = struct{}{}
			names = names[:f.keys]
		}
	}
	f.nameStart, f.nameEnd = name.start, name.end
	if i = skipJSONSpace(b, end); i == len(b) {
		return i, names, errJSONEOF
	}
	if b[i] != ':' {
		return i, names, jsonSyntaxError(b, i, "after object key")
	}
	if i = skipJSONSpace(b, i+1); i == len(b) {
		return i, names, errJSONEOF
	}
	return i, names, nil
}

// countJSONElement counts one more element of top if it is an array.
func countJSONElement(b []byte, top *ijsonFrame) error {
	if top == nil || top.object {
		return nil
	}
	if top.n++; top.n > maxJSONArrayLen {
		if top.nameEnd > top.nameStart {
			return fmt.Errorf("%q has more than %d elements", unquoteJSON(b[top.nameStart:top.nameEnd]), maxJSONArrayLen)
		}
		return fmt.Errorf("an array has more than %d elements", maxJSONArrayLen)
	}
	return nil
}

func skipJSONSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\n' || b[i] == '\r' || b[i] == '\t') {
		i++
	}
	return i
}

// jsonPlainStringByte marks the bytes that scanJSONString passes over
// without a second look: not a quote, a backslash, a control character, or
// the first byte of U+FFFD.
var jsonPlainStringByte = func() (t [256]bool) {
	for c := 0x20; c < 256; c++ {
		t[c] = c != '"' && c != '\\' && c != 0xef
	}
	return t
}()

// scanJSONString scans the string whose opening quote is at b[i], in text
// known to be valid UTF-8, and returns the index just past its closing
// quote; bad, errJSONNUL or errJSONFFFD if it decodes to a string holding
// U+0000 or U+FFFD (as encoding/json decodes a lone surrogate escape); and
// whether it holds an escape.
func scanJSONString(b []byte, i int) (end int, bad error, escaped bool, err error) {
	nul, fffd := false, false
	j := i + 1
	for {
		for j < len(b) && jsonPlainStringByte[b[j]] {
			j++
		}
		if j == len(b) {
			return j, nil, escaped, errJSONEOF
		}
		switch c := b[j]; {
		case c == '"':
			switch {
			case nul:
				bad = errJSONNUL
			case fffd:
				bad = errJSONFFFD
			}
			return j + 1, bad, escaped, nil
		case c == 0xef:
			if j+2 < len(b) && b[j+1] == 0xbf && b[j+2] == 0xbd {
				fffd = true
			}
			j++
		case c < 0x20:
			return j, nil, escaped, jsonSyntaxError(b, j, "in string literal")
		default: // a backslash
			escaped = true
			if j++; j == len(b) {
				return j, nil, escaped, errJSONEOF
			}
			switch b[j] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				j++
				continue
			case 'u':
			default:
				return j, nil, escaped, jsonSyntaxError(b, j, "in string escape code")
			}
			r, err := jsonHex4(b, j+1)
			if err != nil {
				return j, nil, escaped, err
			}
			j += 5
			switch {
			case r == 0:
				nul = true
			case r == utf8.RuneError:
				fffd = true
			case utf16.IsSurrogate(r):
				// A high surrogate escape followed by a low one is a
				// pair; any other decodes to U+FFFD. A malformed
				// escape after it is left to the next turn.
				if r < 0xdc00 && j+1 < len(b) && b[j] == '\\' && b[j+1] == 'u' {
					if r2, err := jsonHex4(b, j+2); err == nil && 0xdc00 <= r2 && r2 < 0xe000 {
						j += 6
						continue
					}
				}
				fffd = true
			}
		}
	}
}

// jsonHex4 reads the four hexadecimal digits at b[i:] of a \u escape.
func jsonHex4(b []byte, i int) (rune, error) {
	var r rune
	for k := i; k < i+4; k++ {
		if k == len(b) {
			return 0, errJSONEOF
		}
		c := b[k]
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, jsonSyntaxError(b, k, "in \\u hexadecimal character escape")
		}
		r = r<<4 | rune(c)
	}
	return r, nil
}

// scanJSONNumber scans the number that starts at b[i] per RFC 8259 §6 and
// returns the index just past it, and plain if it has no exponent and at
// most 308 integer digits, so surely fits a double.
func scanJSONNumber(b []byte, i int) (end int, plain bool, err error) {
	j := i
	if b[j] == '-' {
		j++
	}
	digits := func(what string) error {
		if j == len(b) {
			return errJSONEOF
		}
		if b[j] < '0' || b[j] > '9' {
			return jsonSyntaxError(b, j, what)
		}
		for j < len(b) && '0' <= b[j] && b[j] <= '9' {
			j++
		}
		return nil
	}
	start := j
	if j < len(b) && b[j] == '0' {
		j++
	} else if err := digits("in numeric literal"); err != nil {
		return j, false, err
	}
	plain = j-start <= 308
	if j < len(b) && b[j] == '.' {
		j++
		if err := digits("after decimal point in numeric literal"); err != nil {
			return j, false, err
		}
	}
	if j < len(b) && (b[j] == 'e' || b[j] == 'E') {
		j++
		if j < len(b) && (b[j] == '+' || b[j] == '-') {
			j++
		}
		if err := digits("in exponent of numeric literal"); err != nil {
			return j, false, err
		}
		plain = false
	}
	return j, plain, nil
}

// scanJSONLiteral scans the true, false or null that starts at b[i].
func scanJSONLiteral(b []byte, i int) (int, error) {
	var lit string
	switch b[i] {
	case 't':
		lit = "true"
	case 'f':
		lit = "false"
	default:
		lit = "null"
	}
	for k := 1; k < len(lit); k++ {
		if i+k == len(b) {
			return i + k, errJSONEOF
		}
		if b[i+k] != lit[k] {
			return i + k, jsonSyntaxError(b, i+k, "in literal "+lit)
		}
	}
	return i + len(lit), nil
}

// jsonSyntaxError reports the character at b[i], in valid UTF-8.
func jsonSyntaxError(b []byte, i int, context string) error {
	r, _ := utf8.DecodeRune(b[i:])
	return fmt.Errorf("not valid JSON: invalid character %q %s (offset %d)", r, context, i)
}

// nextJSONRune decodes the character at s[i] of a string's raw content,
// checked by scanJSONString, as encoding/json does, and returns the index
// after it.
func nextJSONRune(s []byte, i int) (rune, int) {
	c := s[i]
	if c != '\\' {
		if c < utf8.RuneSelf {
			return rune(c), i + 1
		}
		r, n := utf8.DecodeRune(s[i:])
		return r, i + n
	}
	switch s[i+1] {
	case 'b':
		return '\b', i + 2
	case 'f':
		return '\f', i + 2
	case 'n':
		return '\n', i + 2
	case 'r':
		return '\r', i + 2
	case 't':
		return '\t', i + 2
	case 'u':
		r, _ := jsonHex4(s, i+2)
		i += 6
		if !utf16.IsSurrogate(r) {
			return r, i
		}
		if i+1 < len(s) && s[i] == '\\' && s[i+1] == 'u' {
			r2, err := jsonHex4(s, i+2)
			if d := utf16.DecodeRune(r, r2); err == nil && d != utf8.RuneError {
				return d, i + 6
			}
		}
		return utf8.RuneError, i
	default: // " \ /
		return rune(s[i+1]), i + 2
	}
}

// sameJSONName reports whether two member names in b decode to the same
// string.
func sameJSONName(b []byte, x, y ijsonName) bool {
	s, t := b[x.start:x.end], b[y.start:y.end]
	if !x.escaped && !y.escaped {
		return string(s) == string(t)
	}
	i, j := 0, 0
	for i < len(s) && j < len(t) {
		var r1, r2 rune
		r1, i = nextJSONRune(s, i)
		r2, j = nextJSONRune(t, j)
		if r1 != r2 {
			return false
		}
	}
	return i == len(s) && j == len(t)
}

// unquoteJSON decodes a string's raw content, checked by scanJSONString.
func unquoteJSON(s []byte) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); {
		var r rune
		r, i = nextJSONRune(s, i)
		out = utf8.AppendRune(out, r)
	}
	return string(out)
}
