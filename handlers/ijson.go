package handlers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Bounds on the shape of JSON we accept from clients. A JWK Set with keys
// holding x5c chains is four levels deep inside the registration body; no
// registration member lists anywhere near 100 values.
const (
	maxJSONDepth    = 10
	maxJSONArrayLen = 100
)

// jsonContainer is one open object or array while checkIJSON walks a text.
type jsonContainer struct {
	object  bool
	name    string // the latest member name (objects) or the array's own, for errors
	names   map[string]struct{}
	n       int  // elements so far (arrays)
	wantKey bool // the next token is a member name (objects)
}

// checkIJSON returns an error unless b is one JSON value in the I-JSON
// profile of RFC 7493 and of a shape encoding/json handles cheaply. It
// refuses invalid UTF-8 (§2.1); strings holding U+0000, or U+FFFD, which
// encoding/json puts in place of a lone surrogate escape (§2.1 forbids
// surrogates; neither character has a use in metadata); a member name
// repeated in any object (§2.3), which parsers resolve differently; a
// number beyond a double (§2.2); nesting deeper than maxJSONDepth; an array
// longer than maxJSONArrayLen; and data after the value.
func checkIJSON(b []byte) error {
	if !utf8.Valid(b) {
		return errors.New("the JSON text is not valid UTF-8")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var stack []*jsonContainer
	for {
		tok, err := dec.Token()
		if err == io.EOF && len(stack) == 0 {
			return errors.New("there is no JSON value")
		}
		if err == io.EOF {
			return errors.New("not valid JSON: the text ends inside a value")
		}
		if err != nil {
			return fmt.Errorf("not valid JSON: %w", err)
		}
		var top *jsonContainer
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if d, ok := tok.(json.Delim); ok && (d == '}' || d == ']') {
			stack = stack[:len(stack)-1]
		} else if top != nil && top.object && top.wantKey {
			// Token returns only strings here.
			name := tok.(string)
			if err := checkJSONString(name); err != nil {
				return fmt.Errorf("member name %q: %w", name, err)
			}
			if _, dup := top.names[name]; dup {
				return fmt.Errorf("member %q is repeated", name)
			}
			if top.names == nil {
				top.names = make(map[string]struct{})
			}
			top.names[name] = struct{}{}
			top.name, top.wantKey = name, false
			continue
		} else {
			name := ""
			if top != nil {
				name = top.name
				if top.object {
					top.wantKey = true
				} else if top.n++; top.n > maxJSONArrayLen {
					if name != "" {
						return fmt.Errorf("%q has more than %d elements", name, maxJSONArrayLen)
					}
					return fmt.Errorf("an array has more than %d elements", maxJSONArrayLen)
				}
			}
			switch v := tok.(type) {
			case json.Delim:
				if len(stack) == maxJSONDepth {
					return fmt.Errorf("the JSON value is nested deeper than %d levels", maxJSONDepth)
				}
				stack = append(stack, &jsonContainer{object: v == '{', wantKey: v == '{', name: name})
			case string:
				if err := checkJSONString(v); err != nil {
					if name != "" {
						return fmt.Errorf("member %q: %w", name, err)
					}
					return err
				}
			case json.Number:
				// §2.2: a number must fit an IEEE 754 double, or
				// encoding/json fails to decode it later.
				if _, err := strconv.ParseFloat(string(v), 64); err != nil {
					return fmt.Errorf("the number %.20s is too large for a double", v)
				}
			}
		}
		if len(stack) == 0 {
			break
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("there is data after the JSON value")
	}
	return nil
}

// checkJSONString refuses the characters checkIJSON does not accept in a
// decoded string.
func checkJSONString(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("a string holds U+0000")
	}
	if strings.ContainsRune(s, utf8.RuneError) {
		return errors.New("a string holds U+FFFD, as an invalid escape decodes")
	}
	return nil
}
