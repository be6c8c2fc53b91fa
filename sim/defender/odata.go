package defender

import (
	"net/url"
	"strconv"
	"strings"
	"time"
)

// This file implements the subset of OData V4 $filter that Defender's
// endpoints accept: comparisons (eq ne gt ge lt le), and, or, not,
// parentheses, `in (...)`, startswith/endswith/contains, and the lambda
// `collection/any(x: x eq '...')`. String literals are single-quoted with ''
// as the escaped quote; datetimes are unquoted ISO 8601. Operators and
// keywords are lowercase as OData defines them; property names match
// case-insensitively, as Defender's do. String comparisons are
// case-insensitive.

const (
	maxFilterLen   = 8 << 10
	maxFilterDepth = 64
	maxPageSize    = 10000
)

// kind is the type of a filterable property or of a value.
type kind uint8

const (
	kString kind = iota + 1
	kEnum
	kInt
	kTime
	kBool
	kStrings
)

// value is one property's value on one record: no allocation per read.
type value struct {
	null bool
	s    string
	n    int64 // ints; times as Unix nanoseconds; bools as 0/1
	ss   []string
}

// field describes one filterable property of T.
type field[T any] struct {
	kind  kind
	enum  []string // allowed values for kEnum
	value func(*T) value
}

// schema maps lowercase property names to fields.
type schema[T any] struct {
	entity string // for messages: "Alert", "Machine", "MachineAction"
	fields map[string]field[T]
}

// predicate reports whether a record matches a compiled filter.
type predicate[T any] func(*T) bool

// --- tokens ---

type tokKind uint8

const (
	tEOF tokKind = iota
	tLParen
	tRParen
	tComma
	tColon
	tSlash
	tString
	tWord
)

type token struct {
	kind tokKind
	text string // word text, or unescaped string literal
	pos  int
}

func odataErr(format string, args ...any) *apiError {
	return errBadRequest(CodeODataError, "Invalid OData query: "+format, args...)
}

func tokenize(s string) ([]token, error) {
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			toks = append(toks, token{tLParen, "(", i})
			i++
		case c == ')':
			toks = append(toks, token{tRParen, ")", i})
			i++
		case c == ',':
			toks = append(toks, token{tComma, ",", i})
			i++
		case c == ':':
			toks = append(toks, token{tColon, ":", i})
			i++
		case c == '/':
			toks = append(toks, token{tSlash, "/", i})
			i++
		case c == '\'':
			start := i
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				if s[i] == '\'' {
					if i+1 < len(s) && s[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					closed = true
					break
				}
				b.WriteByte(s[i])
				i++
			}
			if !closed {
				return nil, odataErr("unterminated string literal at position %d", start)
			}
			toks = append(toks, token{tString, b.String(), start})
		case isDigit(c) || c == '-':
			// Numbers and unquoted datetimes: 42, -1, 2024-01-01T00:00:00Z,
			// 2024-01-01T00:00:00.123+01:00.
			start := i
			for i < len(s) && (isAlnum(s[i]) || s[i] == '-' || s[i] == ':' || s[i] == '.' || s[i] == '+') {
				i++
			}
			toks = append(toks, token{tWord, s[start:i], start})
		case isAlpha(c) || c == '_':
			start := i
			for i < len(s) && (isAlnum(s[i]) || s[i] == '_' || s[i] == '.') {
				i++
			}
			toks = append(toks, token{tWord, s[start:i], start})
		default:
			return nil, odataErr("unexpected character %q at position %d", c, i)
		}
	}
	return append(toks, token{tEOF, "", len(s)}), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isAlnum(c byte) bool { return isDigit(c) || isAlpha(c) }

// --- syntax tree ---

type node interface{ isNode() }

type (
	boolNode struct {
		op   string // "and", "or"
		l, r node
	}
	notNode     struct{ x node }
	compareNode struct {
		prop string
		op   string // eq ne gt ge lt le
		lit  literal
	}
	inNode struct {
		prop string
		lits []literal
	}
	funcNode struct {
		name string // startswith endswith contains
		prop string
		arg  string
	}
	anyNode struct {
		prop string
		v    string
		body node
	}
)

func (boolNode) isNode()    {}
func (notNode) isNode()     {}
func (compareNode) isNode() {}
func (inNode) isNode()      {}
func (funcNode) isNode()    {}
func (anyNode) isNode()     {}

type litKind uint8

const (
	lString litKind = iota + 1
	lInt
	lTime
	lNull
	lBool
)

type literal struct {
	kind litKind
	s    string
	n    int64
	raw  string
}

type parser struct {
	toks  []token
	i     int
	depth int
}

// parseFilter parses an OData $filter expression.
func parseFilter(src string) (node, error) {
	if len(src) > maxFilterLen {
		return nil, odataErr("$filter longer than %d characters", maxFilterLen)
	}
	toks, err := tokenize(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, odataErr("unexpected %q at position %d", t.text, t.pos)
	}
	return n, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) isWord(w string) bool {
	t := p.peek()
	return t.kind == tWord && t.text == w
}

func (p *parser) expect(k tokKind, what string) (token, error) {
	t := p.next()
	if t.kind != k {
		if t.kind == tEOF {
			return t, odataErr("expected %s at end of filter", what)
		}
		return t, odataErr("expected %s at position %d, found %q", what, t.pos, t.text)
	}
	return t, nil
}

func (p *parser) parseOr() (node, error) {
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxFilterDepth {
		return nil, odataErr("filter nested too deeply")
	}
	l, err := p.parseAnd()
	if err != nil {
		return nil, err
	}
	for p.isWord("or") {
		p.next()
		r, err := p.parseAnd()
		if err != nil {
			return nil, err
		}
		l = boolNode{op: "or", l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseAnd() (node, error) {
	l, err := p.parseUnary()
	if err != nil {
		return nil, err
	}
	for p.isWord("and") {
		p.next()
		r, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		l = boolNode{op: "and", l: l, r: r}
	}
	return l, nil
}

func (p *parser) parseUnary() (node, error) {
	if p.isWord("not") {
		p.next()
		p.depth++
		defer func() { p.depth-- }()
		if p.depth > maxFilterDepth {
			return nil, odataErr("filter nested too deeply")
		}
		x, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return notNode{x: x}, nil
	}
	return p.parsePrimary()
}

var compareOps = map[string]bool{"eq": true, "ne": true, "gt": true, "ge": true, "lt": true, "le": true}

func (p *parser) parsePrimary() (node, error) {
	t := p.next()
	switch t.kind {
	case tLParen:
		n, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if _, err := p.expect(tRParen, "')'"); err != nil {
			return nil, err
		}
		return n, nil
	case tWord:
	case tEOF:
		return nil, odataErr("unexpected end of filter")
	default:
		return nil, odataErr("unexpected %q at position %d", t.text, t.pos)
	}
	if !isIdent(t.text) {
		return nil, odataErr("expected a property name at position %d, found %q", t.pos, t.text)
	}
	switch {
	case p.peek().kind == tLParen:
		return p.parseFunc(t)
	case p.peek().kind == tSlash:
		return p.parseAny(t)
	}
	op := p.next()
	if op.kind != tWord {
		return nil, odataErr("expected an operator after %q at position %d", t.text, op.pos)
	}
	if op.text == "in" {
		if _, err := p.expect(tLParen, "'(' after in"); err != nil {
			return nil, err
		}
		var lits []literal
		for {
			l, err := p.parseLiteral()
			if err != nil {
				return nil, err
			}
			lits = append(lits, l)
			if p.peek().kind == tComma {
				p.next()
				continue
			}
			if _, err := p.expect(tRParen, "',' or ')' in in-list"); err != nil {
				return nil, err
			}
			return inNode{prop: t.text, lits: lits}, nil
		}
	}
	if !compareOps[op.text] {
		return nil, odataErr("unknown operator %q at position %d", op.text, op.pos)
	}
	l, err := p.parseLiteral()
	if err != nil {
		return nil, err
	}
	return compareNode{prop: t.text, op: op.text, lit: l}, nil
}

var filterFuncs = map[string]bool{"startswith": true, "endswith": true, "contains": true}

func (p *parser) parseFunc(name token) (node, error) {
	if !filterFuncs[name.text] {
		return nil, odataErr("unknown function %q at position %d", name.text, name.pos)
	}
	p.next() // (
	prop := p.next()
	if prop.kind != tWord || !isIdent(prop.text) {
		return nil, odataErr("expected a property name as first argument of %s", name.text)
	}
	if _, err := p.expect(tComma, "','"); err != nil {
		return nil, err
	}
	arg := p.next()
	if arg.kind != tString {
		return nil, odataErr("expected a string literal as second argument of %s", name.text)
	}
	if _, err := p.expect(tRParen, "')'"); err != nil {
		return nil, err
	}
	return funcNode{name: name.text, prop: prop.text, arg: arg.text}, nil
}

func (p *parser) parseAny(prop token) (node, error) {
	p.next() // /
	if t := p.next(); t.kind != tWord || t.text != "any" {
		return nil, odataErr("only the any() lambda is supported, at position %d", t.pos)
	}
	if _, err := p.expect(tLParen, "'(' after any"); err != nil {
		return nil, err
	}
	v := p.next()
	if v.kind != tWord || !isIdent(v.text) {
		return nil, odataErr("expected a lambda variable at position %d", v.pos)
	}
	if _, err := p.expect(tColon, "':' after lambda variable"); err != nil {
		return nil, err
	}
	body, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if _, err := p.expect(tRParen, "')' closing any"); err != nil {
		return nil, err
	}
	return anyNode{prop: prop.text, v: v.text, body: body}, nil
}

func isIdent(s string) bool {
	if s == "" || !(isAlpha(s[0]) || s[0] == '_') {
		return false
	}
	switch s {
	case "and", "or", "not", "null", "true", "false", "in", "eq", "ne", "gt", "ge", "lt", "le":
		return false
	}
	return true
}

func (p *parser) parseLiteral() (literal, error) {
	t := p.next()
	switch t.kind {
	case tString:
		return literal{kind: lString, s: t.text, raw: "'" + t.text + "'"}, nil
	case tWord:
	case tEOF:
		return literal{}, odataErr("expected a literal at end of filter")
	default:
		return literal{}, odataErr("expected a literal at position %d, found %q", t.pos, t.text)
	}
	switch t.text {
	case "null":
		return literal{kind: lNull, raw: t.text}, nil
	case "true":
		return literal{kind: lBool, n: 1, raw: t.text}, nil
	case "false":
		return literal{kind: lBool, n: 0, raw: t.text}, nil
	}
	if n, err := strconv.ParseInt(t.text, 10, 64); err == nil {
		return literal{kind: lInt, n: n, raw: t.text}, nil
	}
	if tm, ok := parseODataTime(t.text); ok {
		return literal{kind: lTime, n: tm.UnixNano(), raw: t.text}, nil
	}
	return literal{}, odataErr("invalid literal %q at position %d (strings need single quotes)", t.text, t.pos)
}

// parseODataTime accepts the unquoted datetime forms Defender takes:
// RFC 3339 with any fraction, without a zone (UTC), or a bare date with an
// optional Z (as in Microsoft's "lastSeen gt 2018-08-01Z" example).
func parseODataTime(s string) (time.Time, bool) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04", "2006-01-02Z07:00", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// --- compilation ---

// compileFilter parses src and type-checks it against sch. An empty src
// matches everything.
func compileFilter[T any](src string, sch schema[T]) (predicate[T], error) {
	if strings.TrimSpace(src) == "" {
		return func(*T) bool { return true }, nil
	}
	n, err := parseFilter(src)
	if err != nil {
		return nil, err
	}
	return compileNode(n, sch)
}

func (sch schema[T]) lookup(name string) (field[T], error) {
	f, ok := sch.fields[strings.ToLower(name)]
	if !ok {
		return f, odataErr("could not find a filterable property named '%s' on type '%s'", name, sch.entity)
	}
	return f, nil
}

func compileNode[T any](n node, sch schema[T]) (predicate[T], error) {
	switch n := n.(type) {
	case boolNode:
		l, err := compileNode(n.l, sch)
		if err != nil {
			return nil, err
		}
		r, err := compileNode(n.r, sch)
		if err != nil {
			return nil, err
		}
		if n.op == "and" {
			return func(x *T) bool { return l(x) && r(x) }, nil
		}
		return func(x *T) bool { return l(x) || r(x) }, nil
	case notNode:
		x, err := compileNode(n.x, sch)
		if err != nil {
			return nil, err
		}
		return func(t *T) bool { return !x(t) }, nil
	case compareNode:
		f, err := sch.lookup(n.prop)
		if err != nil {
			return nil, err
		}
		return compileCompare(n.prop, f, n.op, n.lit)
	case inNode:
		f, err := sch.lookup(n.prop)
		if err != nil {
			return nil, err
		}
		preds := make([]predicate[T], 0, len(n.lits))
		for _, l := range n.lits {
			pr, err := compileCompare(n.prop, f, "eq", l)
			if err != nil {
				return nil, err
			}
			preds = append(preds, pr)
		}
		return func(x *T) bool {
			for _, pr := range preds {
				if pr(x) {
					return true
				}
			}
			return false
		}, nil
	case funcNode:
		f, err := sch.lookup(n.prop)
		if err != nil {
			return nil, err
		}
		if f.kind != kString && f.kind != kEnum {
			return nil, odataErr("%s needs a string property, '%s' is not one", n.name, n.prop)
		}
		arg := strings.ToLower(n.arg)
		var match func(s string) bool
		switch n.name {
		case "startswith":
			match = func(s string) bool { return strings.HasPrefix(strings.ToLower(s), arg) }
		case "endswith":
			match = func(s string) bool { return strings.HasSuffix(strings.ToLower(s), arg) }
		default:
			match = func(s string) bool { return strings.Contains(strings.ToLower(s), arg) }
		}
		get := f.value
		return func(x *T) bool {
			v := get(x)
			return !v.null && match(v.s)
		}, nil
	case anyNode:
		f, err := sch.lookup(n.prop)
		if err != nil {
			return nil, err
		}
		if f.kind != kStrings {
			return nil, odataErr("any() needs a collection property, '%s' is not one", n.prop)
		}
		elem := schema[string]{entity: "Edm.String", fields: map[string]field[string]{
			strings.ToLower(n.v): {kind: kString, value: func(s *string) value { return value{s: *s} }},
		}}
		body, err := compileNode(n.body, elem)
		if err != nil {
			return nil, err
		}
		get := f.value
		return func(x *T) bool {
			for _, s := range get(x).ss {
				if body(&s) {
					return true
				}
			}
			return false
		}, nil
	}
	return nil, odataErr("unsupported expression")
}

func compileCompare[T any](prop string, f field[T], op string, l literal) (predicate[T], error) {
	get := f.value
	if l.kind == lNull {
		switch op {
		case "eq":
			return func(x *T) bool { return get(x).null }, nil
		case "ne":
			return func(x *T) bool { return !get(x).null }, nil
		}
		return nil, odataErr("operator %s cannot compare with null", op)
	}
	var cmp func(v value) int
	switch f.kind {
	case kString, kEnum:
		if l.kind != lString {
			return nil, odataErr("property '%s' is a string: %s needs a quoted literal", prop, l.raw)
		}
		want := l.s
		if f.kind == kEnum {
			found := false
			for _, e := range f.enum {
				if strings.EqualFold(e, want) {
					found, want = true, e
					break
				}
			}
			if !found {
				return nil, odataErr("the string '%s' is not a valid value of '%s' (allowed: %s)", l.s, prop, strings.Join(f.enum, ", "))
			}
		}
		if op == "eq" || op == "ne" {
			eq := op == "eq"
			return func(x *T) bool {
				v := get(x)
				if v.null {
					return !eq
				}
				return strings.EqualFold(v.s, want) == eq
			}, nil
		}
		lw := strings.ToLower(want)
		cmp = func(v value) int {
			if strings.EqualFold(v.s, want) {
				return 0
			}
			return strings.Compare(strings.ToLower(v.s), lw)
		}
	case kInt:
		if l.kind != lInt {
			return nil, odataErr("property '%s' is a number: %s is not one", prop, l.raw)
		}
		cmp = func(v value) int { return compareInt(v.n, l.n) }
	case kTime:
		if l.kind != lTime {
			return nil, odataErr("property '%s' is a DateTimeOffset: %s is not an unquoted ISO 8601 time", prop, l.raw)
		}
		cmp = func(v value) int { return compareInt(v.n, l.n) }
	case kBool:
		if l.kind != lBool {
			return nil, odataErr("property '%s' is a boolean: %s is not one", prop, l.raw)
		}
		if op != "eq" && op != "ne" {
			return nil, odataErr("operator %s does not apply to boolean '%s'", op, prop)
		}
		cmp = func(v value) int { return compareInt(v.n, l.n) }
	case kStrings:
		return nil, odataErr("collection property '%s' needs any(), e.g. %s/any(x: x eq 'value')", prop, prop)
	default:
		return nil, odataErr("property '%s' cannot be compared", prop)
	}
	var test func(c int) bool
	switch op {
	case "eq":
		test = func(c int) bool { return c == 0 }
	case "ne":
		test = func(c int) bool { return c != 0 }
	case "gt":
		test = func(c int) bool { return c > 0 }
	case "ge":
		test = func(c int) bool { return c >= 0 }
	case "lt":
		test = func(c int) bool { return c < 0 }
	default:
		test = func(c int) bool { return c <= 0 }
	}
	isNe := op == "ne"
	return func(x *T) bool {
		v := get(x)
		if v.null {
			return isNe
		}
		return test(cmp(v))
	}, nil
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// --- paging options ---

// query holds the parsed OData system query options of a collection request.
type query struct {
	filter string
	top    int // -1: not given
	skip   int
	expand string
}

// parseQuery reads $filter, $top, $skip and (when allowExpand) $expand.
// Other $-options are refused as Defender refuses unsupported ones; other
// parameters are ignored.
func parseQuery(v url.Values, allowExpand bool) (query, error) {
	q := query{top: -1}
	for k, vals := range v {
		if !strings.HasPrefix(k, "$") {
			continue
		}
		if len(vals) != 1 {
			return q, odataErr("query option %s given %d times", k, len(vals))
		}
		val := vals[0]
		switch strings.ToLower(k) {
		case "$filter":
			q.filter = val
		case "$top":
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || n < 0 {
				return q, odataErr("$top must be a non-negative integer, got %q", val)
			}
			if n > maxPageSize {
				return q, odataErr("the limit of '%d' for $top has been exceeded: the requested value is '%d'", maxPageSize, n)
			}
			q.top = n
		case "$skip":
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil || n < 0 {
				return q, odataErr("$skip must be a non-negative integer, got %q", val)
			}
			q.skip = n
		case "$expand":
			if !allowExpand || !strings.EqualFold(strings.TrimSpace(val), "evidence") {
				return q, odataErr("$expand=%s is not supported", val)
			}
			q.expand = "evidence"
		default:
			return q, odataErr("query option %s is not supported", k)
		}
	}
	return q, nil
}

// page applies skip and top (default: the 10,000 maximum) to n items and
// returns the half-open index range.
func (q query) page(n int) (from, to int) {
	top := q.top
	if top < 0 {
		top = maxPageSize
	}
	from = min(q.skip, n)
	to = min(from+top, n)
	return from, to
}
