package index

import (
	"testing"
	"time"
)

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"":                      "",
		"smith":                 "smith",
		"Smith":                 "smith",
		"José María":            "jose maria",
		"Núñez Peña":            "nunez pena",
		"Ærøskøbing Straße":     "aeroskobing strasse",
		"ŁÓDŹ":                  "lodz",
		"Œuvre Þór ĳssel":       "oeuvre thor ijssel",
		"Jose\u0301":            "jose", // decomposed é
		"Ελληνικά":              "ελληνικά",
		"Müller-Lüdenscheidt":   "muller-ludenscheidt",
		"2 × 3 ÷ 4":             "2 × 3 ÷ 4",
		"Ĉu Ŝi Ĝojas? Ĥoro Ĵus": "cu si gojas? horo jus",
		"İstanbul ıi":           "istanbul ii",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
	// The fold table covers U+00C0..U+017F exactly.
	if len(latinFold) != 0x17f-0xc0+1 {
		t.Fatalf("latinFold has %d entries", len(latinFold))
	}
	for r := rune(0xc0); r <= 0x17f; r++ {
		got := Normalize(string(r))
		if r == '×' || r == '÷' {
			continue
		}
		for _, c := range got {
			if c < 'a' || c > 'z' {
				t.Errorf("Normalize(%q) = %q, not plain lower-case ASCII", r, got)
			}
		}
	}
}

func TestPrecisionRange(t *testing.T) {
	for in, want := range map[string][2]string{
		"100":                             {"99.5", "100.5"},
		"1.50":                            {"1.495", "1.505"},
		"0":                               {"-0.5", "0.5"},
		"0.05":                            {"0.045", "0.055"},
		"-1.5":                            {"-1.55", "-1.45"},
		"-100":                            {"-100.5", "-99.5"},
		"1e2":                             {"50", "150"},
		"1.5E-3":                          {"0.00145", "0.00155"},
		"176.35499866729558":              {"176.354998667295575", "176.354998667295585"},
		"10":                              {"9.5", "10.5"},
		"1":                               {"0.5", "1.5"},
		"0.1":                             {"0.05", "0.15"},
		"1000000000000000000000000000001": {"1000000000000000000000000000000.5", "1000000000000000000000000000001.5"},
	} {
		lo, hi, err := PrecisionRange(in)
		if err != nil || lo != want[0] || hi != want[1] {
			t.Errorf("PrecisionRange(%s) = [%s, %s) %v; want [%s, %s)", in, lo, hi, err, want[0], want[1])
		}
	}
	for _, bad := range []string{"", "-", "1.", ".5", "1e", "abc", "1.2.3", "0x10", "1e99999"} {
		if _, _, err := PrecisionRange(bad); err == nil {
			t.Errorf("PrecisionRange(%q) succeeded", bad)
		}
	}
}

func TestDateRange(t *testing.T) {
	u := func(s string) time.Time {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			panic(err)
		}
		return t
	}
	for in, want := range map[string][2]string{
		"2020":                               {"2020-01-01T00:00:00Z", "2021-01-01T00:00:00Z"},
		"2020-02":                            {"2020-02-01T00:00:00Z", "2020-03-01T00:00:00Z"},
		"2020-12":                            {"2020-12-01T00:00:00Z", "2021-01-01T00:00:00Z"},
		"2020-02-29":                         {"2020-02-29T00:00:00Z", "2020-03-01T00:00:00Z"},
		"2020-02-29T23:59:59Z":               {"2020-02-29T23:59:59Z", "2020-03-01T00:00:00Z"},
		"2020-01-01T10:00:00+02:00":          {"2020-01-01T08:00:00Z", "2020-01-01T08:00:01Z"},
		"2020-01-01T10:00:00-05:30":          {"2020-01-01T15:30:00Z", "2020-01-01T15:30:01Z"},
		"2020-01-01T10:00:00":                {"2020-01-01T10:00:00Z", "2020-01-01T10:00:01Z"}, // no zone: UTC
		"2020-01-01T10:00Z":                  {"2020-01-01T10:00:00Z", "2020-01-01T10:01:00Z"},
		"2020-01-01T10:00:00.5Z":             {"2020-01-01T10:00:00.5Z", "2020-01-01T10:00:00.6Z"},
		"2011-09-23T09:55:07.915+00:00":      {"2011-09-23T09:55:07.915Z", "2011-09-23T09:55:07.916Z"},
		"2020-01-01T00:00:00.1234567891234Z": {"2020-01-01T00:00:00.123456789Z", "2020-01-01T00:00:00.12345679Z"},
		"2016-12-31T23:59:60Z":               {"2016-12-31T23:59:59.999999999Z", "2017-01-01T00:00:00Z"},
	} {
		lo, hi, err := DateRange(in)
		if err != nil || !lo.Equal(u(want[0])) || !hi.Equal(u(want[1])) || lo.Location() != time.UTC {
			t.Errorf("DateRange(%s) = [%v, %v) %v; want [%s, %s)", in, lo, hi, err, want[0], want[1])
		}
	}
	for _, bad := range []string{
		"", "20", "2020-13", "2020-00", "2020-02-30", "2021-02-29", "2020-1-1", "2020-01-01T", "2020-01-01T25:00:00Z",
		"2020-01-01T10:60:00Z", "2020-01-01T10:00:00.Z", "2020-01-01T10:00:00+2:00", "2020-01-01 10:00:00Z",
		"2020-01-01T10:00:00ZZ", "0000", "2020/01/01", "yesterday",
	} {
		if _, _, err := DateRange(bad); err == nil {
			t.Errorf("DateRange(%q) succeeded", bad)
		}
	}
}

func TestSplitReference(t *testing.T) {
	for in, want := range map[string][4]string{
		"Patient/123":                                   {"Patient", "123", "", ""},
		"Patient/123/_history/4":                        {"Patient", "123", "4", ""},
		"http://x.org/fhir/Patient/123":                 {"Patient", "123", "", "http://x.org/fhir/Patient/123"},
		"http://x.org/fhir/Patient/123/_history/4":      {"Patient", "123", "4", "http://x.org/fhir/Patient/123/_history/4"},
		"urn:uuid:0b3c2d1e-0000-4000-8000-000000000000": {"", "", "", "urn:uuid:0b3c2d1e-0000-4000-8000-000000000000"},
		"http://x.org/fhir/Nope/123":                    {"", "", "", "http://x.org/fhir/Nope/123"},
		"Patient?identifier=x|1":                        {"", "", "", "Patient?identifier=x|1"},
		"Nope/123":                                      {"", "", "", "Nope/123"},
		"Patient/bad id":                                {"", "", "", "Patient/bad id"},
		"a/Patient/123":                                 {"", "", "", "a/Patient/123"},
	} {
		typ, id, version, url := splitReference(in)
		if got := [4]string{typ, id, version, url}; got != want {
			t.Errorf("splitReference(%q) = %q, want %q", in, got, want)
		}
	}
}
