package index

import (
	"fmt"
	"time"
)

// DateRange parses a FHIR date, dateTime or instant and returns the instants
// it covers as [low, high) in UTC: "2020" is the whole year, "2020-03-01" the
// whole day, "2020-03-01T10:00:00Z" one second, "…:00.123Z" one millisecond.
//
// A value without a time zone (a date, or a dateTime without offset, which
// FHIR forbids when there is a time but which occurs) is taken as UTC. This
// is simple and predictable; the alternative, the server's local zone, would
// make results depend on where the server runs.
func DateRange(s string) (low, high time.Time, err error) {
	bad := func() (time.Time, time.Time, error) {
		return time.Time{}, time.Time{}, fmt.Errorf("invalid date/time %q", s)
	}
	p := dateParser{s: s}
	year, ok := p.digits(4)
	if !ok || year < 1 {
		return bad()
	}
	if p.done() {
		low = time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC)
		return low, low.AddDate(1, 0, 0), nil
	}
	month, ok := p.sepDigits('-', 2)
	if !ok || month < 1 || month > 12 {
		return bad()
	}
	if p.done() {
		low = time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)
		return low, low.AddDate(0, 1, 0), nil
	}
	day, ok := p.sepDigits('-', 2)
	if !ok || day < 1 || day > daysIn(year, month) {
		return bad()
	}
	if p.done() {
		low = time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
		return low, low.AddDate(0, 0, 1), nil
	}
	hour, ok := p.sepDigits('T', 2)
	if !ok || hour > 23 {
		return bad()
	}
	minute, ok := p.sepDigits(':', 2)
	if !ok || minute > 59 {
		return bad()
	}
	second, nanos, step := 0, 0, time.Minute
	if p.peek() == ':' {
		if second, ok = p.sepDigits(':', 2); !ok || second > 60 {
			return bad()
		}
		step = time.Second
		if second == 60 { // leap second: keep it inside the minute
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
				return bad()
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
			return bad()
		}
		offset = sign * (oh*3600 + om*60)
	default:
		return bad()
	}
	if !p.done() {
		return bad()
	}
	low = time.Date(year, time.Month(month), day, hour, minute, second, nanos, time.UTC).Add(-time.Duration(offset) * time.Second)
	return low, low.Add(step), nil
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

func daysIn(year, month int) int {
	return time.Date(year, time.Month(month)+1, 0, 0, 0, 0, 0, time.UTC).Day()
}
