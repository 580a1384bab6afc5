package search

import (
	"strconv"
	"strings"
	"time"
)

// The date and number ranges below must agree exactly with the rows that
// package fhir/index writes (its dateRange and precisionRange, which it does
// not export): a search value and an index row are compared as ranges.
// TestRangesMatchIndex checks the two against each other through
// index.Extract.

// dateRange parses a search date (YYYY, YYYY-MM, YYYY-MM-DD, or
// YYYY-MM-DDThh:mm[:ss[.fff...]] with an optional Z or ±hh:mm) and returns
// the instants it covers as [low, high) in UTC. A value without a time
// zone is taken as UTC, as the index does.
func dateRange(s string) (low, high time.Time, ok bool) {
	p := dateParser{s: s}
	year, ok := p.digits(4)
	if !ok || year < 1 {
		return low, high, false
	}
	if p.done() {
		low = time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		return low, low.AddDate(1, 0, 0), true
	}
	month, ok := p.sepDigits('-', 2)
	if !ok || month < 1 || month > 12 {
		return low, high, false
	}
	if p.done() {
		low = time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		return low, low.AddDate(0, 1, 0), true
	}
	day, ok := p.sepDigits('-', 2)
	if !ok || day < 1 || day > time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day() {
		return low, high, false
	}
	if p.done() {
		low = time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		return low, low.AddDate(0, 0, 1), true
	}
	hour, ok1 := p.sepDigits('T', 2)
	minute, ok2 := p.sepDigits(':', 2)
	if !ok1 || !ok2 || hour > 23 || minute > 59 {
		return low, high, false
	}
	second, nanos, step := 0, 0, time.Minute
	if p.peek() == ':' {
		if second, ok = p.sepDigits(':', 2); !ok || second > 60 {
			return low, high, false
		}
		step = time.Second
		if second == 60 { // leap second: kept inside the minute
			second, nanos, step = 59, 999999999, time.Nanosecond
		}
		if p.peek() == '.' {
			p.i++
			n, scale := 0, 0
			for p.i < len(s) && s[p.i] >= '0' && s[p.i] <= '9' {
				if scale < 9 {
					n = n*10 + int(s[p.i]-'0')
					scale++
				}
				p.i++
			}
			if scale == 0 {
				return low, high, false
			}
			step = time.Second
			for i := scale; i < 9; i++ {
				n *= 10
			}
			for i := 0; i < scale; i++ {
				step /= 10
			}
			nanos = n
		}
	}
	offset := 0
	switch p.peek() {
	case 0:
	case 'Z':
		p.i++
	case '+', '-':
		sign := 1
		if s[p.i] == '-' {
			sign = -1
		}
		p.i++
		oh, ok1 := p.digits(2)
		om, ok2 := p.sepDigits(':', 2)
		if !ok1 || !ok2 || oh > 14 || om > 59 {
			return low, high, false
		}
		offset = sign * (oh*3600 + om*60)
	default:
		return low, high, false
	}
	if !p.done() {
		return low, high, false
	}
	low = time.Date(year, time.Month(month), day, hour, minute, second, nanos, time.UTC).Add(-time.Duration(offset) * time.Second)
	return low, low.Add(step), true
}

type dateParser struct {
	s string
	i int
}

func (p *dateParser) done() bool { return p.i == len(p.s) }

func (p *dateParser) peek() byte {
	if p.i < len(p.s) {
		return p.s[p.i]
	}
	return 0
}

func (p *dateParser) digits(n int) (int, bool) {
	if p.i+n > len(p.s) {
		return 0, false
	}
	v := 0
	for _, c := range []byte(p.s[p.i : p.i+n]) {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	p.i += n
	return v, true
}

func (p *dateParser) sepDigits(sep byte, n int) (int, bool) {
	if p.peek() != sep {
		return 0, false
	}
	p.i++
	return p.digits(n)
}

// decimal is a parsed decimal: (-1 if neg) × digits × 10^-scale.
type decimal struct {
	neg    bool
	digits string // no leading zeros; "0" for zero
	scale  int
}

// parseDecimal reads a decimal as FHIR and JSON write it (12, -0.50, 1.5e3;
// a leading + is accepted), exactly.
func parseDecimal(s string) (decimal, bool) {
	var d decimal
	i := 0
	if i < len(s) && (s[i] == '-' || s[i] == '+') {
		d.neg = s[i] == '-'
		i++
	}
	start := i
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	intPart := s[start:i]
	frac := ""
	if i < len(s) && s[i] == '.' {
		i++
		fs := i
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if frac = s[fs:i]; frac == "" {
			return d, false
		}
	}
	if intPart == "" {
		return d, false
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > 1000 || e < -1000 {
			return d, false
		}
		exp, i = e, len(s)
	}
	if i != len(s) {
		return d, false
	}
	if d.digits = strings.TrimLeft(intPart+frac, "0"); d.digits == "" {
		d.digits, d.neg = "0", false
	}
	d.scale = len(frac) - exp
	return d, true
}

// precisionRange returns the interval a decimal stands for by its
// precision, as exact decimal strings: 100 is [99.5, 100.5), 1.50 is
// [1.495, 1.505), 1e2 is [50, 150).
func precisionRange(s string) (low, high string, ok bool) {
	d, ok := parseDecimal(s)
	if !ok {
		return "", "", false
	}
	// value × 10 ± 5 at scale+1: the digits with a 5 appended, and the
	// digits minus one with a 5 appended.
	up, down := d.digits+"5", "-5"
	if d.digits != "0" {
		down = decrement(d.digits) + "5"
	}
	scale := d.scale + 1
	if d.neg {
		return "-" + formatScaled(up, scale), negate(formatScaled(down, scale)), true
	}
	return formatScaled(down, scale), formatScaled(up, scale), true
}

func negate(s string) string {
	if strings.HasPrefix(s, "-") {
		return s[1:]
	}
	return "-" + s
}

// decrement subtracts one from a positive decimal digit string.
func decrement(digits string) string {
	b := []byte(digits)
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] > '0' {
			b[i]--
			break
		}
		b[i] = '9'
	}
	if out := strings.TrimLeft(string(b), "0"); out != "" {
		return out
	}
	return "0"
}

// formatScaled renders digits × 10^-scale (digits may start with '-').
func formatScaled(digits string, scale int) string {
	sign := ""
	if strings.HasPrefix(digits, "-") {
		sign, digits = "-", digits[1:]
	}
	if digits = strings.TrimLeft(digits, "0"); digits == "" {
		digits = "0"
	}
	if scale <= 0 {
		if digits == "0" {
			return "0"
		}
		return sign + digits + strings.Repeat("0", -scale)
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}
