package index

import (
	"fmt"
	"strconv"
	"strings"
)

// decimal is a parsed decimal: the value is (-1 if neg) × digits × 10^-scale.
type decimal struct {
	neg    bool
	digits string // no leading zeros; "0" for zero
	scale  int
}

// parseDecimal reads a JSON/FHIR decimal (12, -0.50, 1.5e3) exactly.
func parseDecimal(s string) (decimal, error) {
	var d decimal
	bad := func() (decimal, error) { return decimal{}, fmt.Errorf("invalid decimal %q", s) }
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
		frac = s[fs:i]
		if frac == "" {
			return bad()
		}
	}
	if intPart == "" {
		return bad()
	}
	exp := 0
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		e, err := strconv.Atoi(strings.TrimPrefix(s[i+1:], "+"))
		if err != nil || e > 1000 || e < -1000 {
			return bad()
		}
		exp = e
		i = len(s)
	}
	if i != len(s) {
		return bad()
	}
	d.digits = strings.TrimLeft(intPart+frac, "0")
	if d.digits == "" {
		d.digits = "0"
		d.neg = false
	}
	d.scale = len(frac) - exp
	return d, nil
}

// PrecisionRange returns the interval a decimal stands for by its precision:
// 100 is [99.5, 100.5), 1.50 is [1.495, 1.505). The bounds are exact
// decimal strings.
func PrecisionRange(s string) (low, high string, err error) {
	d, err := parseDecimal(s)
	if err != nil {
		return "", "", err
	}
	// value × 10 ± 5, at scale+1: the digits with a 5 appended, and the
	// digits minus one with a 5 appended.
	up := d.digits + "5"
	down := "-5"
	if d.digits != "0" {
		down = decrement(d.digits) + "5"
	}
	scale := d.scale + 1
	if d.neg {
		return "-" + formatScaled(up, scale), negate(formatScaled(down, scale)), nil
	}
	return formatScaled(down, scale), formatScaled(up, scale), nil
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
	out := strings.TrimLeft(string(b), "0")
	if out == "" {
		return "0"
	}
	return out
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

// ValidDecimal reports whether s is a decimal PrecisionRange accepts.
func ValidDecimal(s string) bool {
	_, err := parseDecimal(s)
	return err == nil
}
