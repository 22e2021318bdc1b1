package servant

import "strings"

// tokKind is the kind of a token of lexSQL.
type tokKind uint8

const (
	tokWord        tokKind = iota // a keyword, unquoted identifier or number, upper-cased
	tokQuotedIdent                // `name`
	tokString                     // '…' or "…"
	tokUserVar                    // @name, @'name', @`name`
	tokSysVar                     // @@name, @@session.name, upper-cased
	tokPunct                      // an operator or punctuation: ( ) ; . := = …
)

// token is one token of a statement. text is the word upper-cased, the
// variable's text with its @ or @@ (upper-cased for a system variable), the
// punctuation; strings and quoted identifiers keep no text.
type token struct {
	kind tokKind
	text string
}

// is reports whether t is the punctuation p.
func (t token) is(p string) bool { return t.kind == tokPunct && t.text == p }

// word is t's upper-cased text if t is a word, else "".
func (t token) word() string {
	if t.kind == tokWord {
		return t.text
	}
	return ""
}

// lexSQL splits a MySQL statement into tokens the way the server reads it:
// whitespace and comments (-- up to the line end, # likewise, /* … */) are
// dropped, but the content of executable comments (/*! … */, /*!50001 … */,
// /*M! … */, /*M!100100 … */) is read as code, since MySQL and MariaDB run it;
// strings ('…', "…", with backslash and doubled-quote escapes) and quoted
// identifiers (`…`, doubled backquote) are one token each. A string, quoted
// identifier or comment that does not end is refused.
func lexSQL(s string) ([]token, error) {
	var toks []token
	inExec := false // inside an executable comment
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c <= ' ':
			i++
		case c == '#', c == '-' && strings.HasPrefix(s[i:], "--") && (i+2 == len(s) || s[i+2] <= ' '):
			if nl := strings.IndexByte(s[i:], '\n'); nl >= 0 {
				i += nl + 1
			} else {
				i = len(s)
			}
		case strings.HasPrefix(s[i:], "/*!"), strings.HasPrefix(s[i:], "/*M!"):
			i += strings.IndexByte(s[i:], '!') + 1
			for i < len(s) && s[i] >= '0' && s[i] <= '9' { // the version it needs
				i++
			}
			inExec = true
		case strings.HasPrefix(s[i:], "/*"):
			end := strings.Index(s[i+2:], "*/")
			if end < 0 {
				return nil, refused("unterminated comment")
			}
			i += 2 + end + 2
		case inExec && strings.HasPrefix(s[i:], "*/"):
			inExec = false
			i += 2
		case c == '\'', c == '"', c == '`':
			n, ok := quoted(s[i:])
			if !ok {
				return nil, refused("unterminated string or quoted identifier")
			}
			t := token{kind: tokString}
			if c == '`' { // its name, upper-cased: `GET_LOCK`(…) calls GET_LOCK
				t = token{kind: tokQuotedIdent, text: strings.ToUpper(strings.ReplaceAll(s[i+1:i+n-1], "``", "`"))}
			}
			toks = append(toks, t)
			i += n
		case c == '@':
			n, ok := variable(s[i:])
			if !ok {
				return nil, refused("unterminated quoted variable name")
			}
			t := token{kind: tokUserVar, text: s[i : i+n]}
			if strings.HasPrefix(t.text, "@@") {
				t = token{kind: tokSysVar, text: strings.ToUpper(t.text)}
			}
			toks = append(toks, t)
			i += n
		case isWordByte(c):
			n := wordLen(s[i:])
			toks = append(toks, token{kind: tokWord, text: strings.ToUpper(s[i : i+n])})
			i += n
		case strings.HasPrefix(s[i:], ":="):
			toks = append(toks, token{kind: tokPunct, text: ":="})
			i += 2
		default:
			toks = append(toks, token{kind: tokPunct, text: s[i : i+1]})
			i++
		}
	}
	if inExec {
		return nil, refused("unterminated comment")
	}
	return toks, nil
}

// quoted is the length of the quoted token s starts with (its quote char
// included both ends); false if it does not end. In strings a backslash
// escapes the next byte; in all a doubled quote is the quote itself.
func quoted(s string) (int, bool) {
	q := s[0]
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == '\\' && q != '`':
			i++
		case s[i] == q && i+1 < len(s) && s[i+1] == q:
			i++
		case s[i] == q:
			return i + 1, true
		}
	}
	return 0, false
}

// variable is the length of the variable s starts with: @name, @'name',
// @"name", @`name`, @@name, @@session.name.
func variable(s string) (int, bool) {
	i := 1
	if len(s) > 1 && s[1] == '@' {
		i = 2
	}
	if i < len(s) && (s[i] == '\'' || s[i] == '"' || s[i] == '`') {
		n, ok := quoted(s[i:])
		return i + n, ok
	}
	for i < len(s) && (isWordByte(s[i]) || s[i] == '.') {
		i++
	}
	return i, true
}

// isWordByte reports whether c may be part of an unquoted word: letters,
// digits, _ and $, and every byte of a multi-byte UTF-8 character.
func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '$' || c >= 0x80
}

func wordLen(s string) int {
	n := 0
	for n < len(s) && isWordByte(s[n]) {
		n++
	}
	return n
}
