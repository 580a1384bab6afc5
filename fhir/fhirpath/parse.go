package fhirpath

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Expression is a compiled FHIRPath expression. It is immutable and safe for
// concurrent use.
type Expression struct {
	src  string
	root expr
}

// Compile parses a FHIRPath expression. It fails on syntax errors and on
// anything outside the supported subset (see the package documentation), so
// that an expression that compiles is one that evaluates as written.
func Compile(src string) (*Expression, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, fmt.Errorf("fhirpath %q: %v", src, err)
	}
	p := &parser{toks: toks}
	e, err := p.expr(0)
	if err == nil && p.peek().kind != tokEOF {
		err = fmt.Errorf("at %d: unexpected %s", p.peek().pos, p.peek())
	}
	if err != nil {
		return nil, fmt.Errorf("fhirpath %q: %v", src, err)
	}
	return &Expression{src: src, root: e}, nil
}

// MustCompile is Compile for expressions known to be valid; it panics on error.
func MustCompile(src string) *Expression {
	e, err := Compile(src)
	if err != nil {
		panic(err)
	}
	return e
}

// String returns the source text of the expression.
func (e *Expression) String() string { return e.src }

type parser struct {
	toks []token
	i    int
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tokEOF {
		p.i++
	}
	return t
}

func (p *parser) isOp(text string) bool {
	t := p.peek()
	return t.kind == tokOp && t.text == text
}

func (p *parser) expect(text string) error {
	if !p.isOp(text) {
		return fmt.Errorf("at %d: expected '%s', found %s", p.peek().pos, text, p.peek())
	}
	p.next()
	return nil
}

// precedence of a binary operator, loosest first, as in the FHIRPath
// grammar; 0 if op is not a binary operator.
func precedence(op string) int {
	switch op {
	case "implies":
		return 1
	case "or", "xor":
		return 2
	case "and":
		return 3
	case "in", "contains":
		return 4
	case "=", "~", "!=", "!~":
		return 5
	case "<", ">", "<=", ">=":
		return 6
	case "|":
		return 7
	case "is", "as":
		return 8
	case "+", "-", "&":
		return 9
	case "*", "/", "div", "mod":
		return 10
	}
	return 0
}

func (p *parser) binaryOp() (string, int) {
	t := p.peek()
	if t.kind == tokOp || t.kind == tokIdent && !t.quoted {
		if prec := precedence(t.text); prec > 0 {
			return t.text, prec
		}
	}
	return "", 0
}

func (p *parser) expr(minPrec int) (expr, error) {
	left, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		op, prec := p.binaryOp()
		if op == "" || prec <= minPrec {
			return left, nil
		}
		opTok := p.next()
		if op == "is" || op == "as" {
			typ, err := p.typeSpecifier()
			if err != nil {
				return nil, err
			}
			left = &typeOpExpr{is: op == "is", left: left, typ: typ}
			continue
		}
		right, err := p.expr(prec)
		if err != nil {
			return nil, err
		}
		switch op {
		case "|":
			left = &unionExpr{left: left, right: right}
		case "=", "!=":
			left = &equalExpr{not: op == "!=", left: left, right: right}
		case "and", "or", "xor", "implies":
			left = &logicExpr{op: op, left: left, right: right}
		default:
			return nil, fmt.Errorf("at %d: operator '%s' is not supported", opTok.pos, op)
		}
	}
}

func (p *parser) unary() (expr, error) {
	if p.isOp("-") || p.isOp("+") {
		sign := p.next()
		if p.peek().kind == tokNumber {
			n := p.next()
			text := n.text
			if sign.text == "-" {
				text = "-" + text
			}
			return p.postfix(numberLiteral(text))
		}
		return nil, fmt.Errorf("at %d: unary '%s' is only supported before a number", sign.pos, sign.text)
	}
	t, err := p.term()
	if err != nil {
		return nil, err
	}
	return p.postfix(t)
}

func numberLiteral(text string) expr {
	typ := "integer"
	if strings.Contains(text, ".") {
		typ = "decimal"
	}
	return &literalExpr{nodes: []Node{{Type: typ, Value: json.Number(text)}}}
}

func (p *parser) postfix(e expr) (expr, error) {
	for {
		switch {
		case p.isOp("."):
			p.next()
			name := p.next()
			if name.kind != tokIdent {
				return nil, fmt.Errorf("at %d: expected a name after '.', found %s", name.pos, name)
			}
			if p.isOp("(") {
				call, err := p.call(e, name)
				if err != nil {
					return nil, err
				}
				e = call
			} else {
				e = &memberExpr{recv: e, name: name.text}
			}
		case p.isOp("["):
			open := p.next()
			idx := p.next()
			if idx.kind != tokNumber || strings.Contains(idx.text, ".") {
				return nil, fmt.Errorf("at %d: only integer literals are supported as an index", open.pos)
			}
			if err := p.expect("]"); err != nil {
				return nil, err
			}
			n, err := strconv.Atoi(idx.text)
			if err != nil {
				return nil, fmt.Errorf("at %d: bad index %s", idx.pos, idx.text)
			}
			e = &indexExpr{recv: e, index: n}
		default:
			return e, nil
		}
	}
}

func (p *parser) term() (expr, error) {
	t := p.next()
	switch t.kind {
	case tokIdent:
		if p.isOp("(") {
			return p.call(nil, t)
		}
		if !t.quoted && (t.text == "true" || t.text == "false") {
			return &literalExpr{nodes: []Node{{Type: "boolean", Value: t.text == "true"}}}, nil
		}
		return &memberExpr{name: t.text, root: true}, nil
	case tokString:
		return &literalExpr{nodes: []Node{{Type: "string", Value: t.text}}}, nil
	case tokNumber:
		return numberLiteral(t.text), nil
	case tokVar:
		switch t.text {
		case "resource", "rootResource", "context":
			return &varExpr{name: t.text}, nil
		case "ucum":
			return &literalExpr{nodes: []Node{{Type: "string", Value: "http://unitsofmeasure.org"}}}, nil
		case "sct":
			return &literalExpr{nodes: []Node{{Type: "string", Value: "http://snomed.info/sct"}}}, nil
		case "loinc":
			return &literalExpr{nodes: []Node{{Type: "string", Value: "http://loinc.org"}}}, nil
		}
		return nil, fmt.Errorf("at %d: variable %%%s is not supported", t.pos, t.text)
	case tokSpecial:
		if t.text == "this" {
			return thisExpr{}, nil
		}
		return nil, fmt.Errorf("at %d: $%s is not supported", t.pos, t.text)
	case tokOp:
		switch t.text {
		case "(":
			e, err := p.expr(0)
			if err != nil {
				return nil, err
			}
			if err := p.expect(")"); err != nil {
				return nil, err
			}
			return e, nil
		case "{":
			if err := p.expect("}"); err != nil {
				return nil, err
			}
			return &literalExpr{}, nil
		}
	}
	return nil, fmt.Errorf("at %d: unexpected %s", t.pos, t)
}

// typeSpecifier reads a possibly qualified type name (FHIR.Quantity,
// System.String, Patient) and drops the namespace.
func (p *parser) typeSpecifier() (string, error) {
	t := p.next()
	if t.kind != tokIdent {
		return "", fmt.Errorf("at %d: expected a type name, found %s", t.pos, t)
	}
	name := t.text
	if p.isOp(".") && p.toks[p.i+1].kind == tokIdent {
		p.next()
		name = p.next().text
		if t.text != "FHIR" && t.text != "System" {
			return "", fmt.Errorf("at %d: unknown type namespace %q", t.pos, t.text)
		}
	}
	return name, nil
}

// arity returns the minimum and maximum number of arguments of a supported
// function.
func arity(name string) (lo, hi int, ok bool) {
	switch name {
	case "where", "select", "all", "ofType", "as", "is", "extension":
		return 1, 1, true
	case "exists":
		return 0, 1, true
	case "empty", "not", "first", "last", "tail", "single", "count", "distinct", "hasValue", "resolve":
		return 0, 0, true
	}
	return 0, 0, false
}

func (p *parser) call(recv expr, name token) (expr, error) {
	minArgs, maxArgs, ok := arity(name.text)
	if !ok {
		return nil, fmt.Errorf("at %d: function %s() is not supported", name.pos, name.text)
	}
	if err := p.expect("("); err != nil {
		return nil, err
	}
	c := &callExpr{recv: recv, name: name.text}
	switch name.text {
	case "ofType", "as", "is":
		typ, err := p.typeSpecifier()
		if err != nil {
			return nil, err
		}
		c.typ = typ
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		return c, nil
	case "extension":
		t := p.next()
		if t.kind != tokString {
			return nil, fmt.Errorf("at %d: extension() takes a string literal", t.pos)
		}
		c.typ = t.text
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		return c, nil
	}
	for !p.isOp(")") {
		if len(c.args) > 0 {
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
		a, err := p.expr(0)
		if err != nil {
			return nil, err
		}
		c.args = append(c.args, a)
	}
	p.next()
	if len(c.args) < minArgs || len(c.args) > maxArgs {
		return nil, fmt.Errorf("at %d: %s() takes %d to %d arguments, got %d", name.pos, name.text, minArgs, maxArgs, len(c.args))
	}
	return c, nil
}
