package fhirpath

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"testing"
)

// stdDecode is the reference: encoding/json with UseNumber.
func stdDecode(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("trailing data")
	}
	return v, nil
}

var decodeCases = []string{
	`{}`,
	`{"resourceType":"Observation","valueQuantity":{"value":176.35499866729558,"unit":"cm"}}`,
	`{"a":[],"b":{},"c":[1,-2,3.5e-7,0,-0.0,1E+2],"d":null,"e":true,"f":false}`,
	`{"s":"tab\tquote\"slash\/back\\uni\u00e9\u20ac pair\ud83d\ude00 lone\ud800x"}`,
	`{"bad":"` + "\xff\xfe ok \xc3\xa9" + `"}`,
	`{"dup":1,"dup":2}`,
	" \n\t{ \"a\" : [ 1 , { \"b\" : \"c\" } ] } \r\n",
	`{"given":["José","María"],"family":"Núñez"}`,
}

func TestDecodeMatchesEncodingJSON(t *testing.T) {
	for _, c := range decodeCases {
		want, err := stdDecode([]byte(c))
		if err != nil {
			t.Fatalf("reference failed on %q: %v", c, err)
		}
		got, err := Decode([]byte(c))
		if err != nil {
			t.Errorf("Decode(%q): %v", c, err)
			continue
		}
		if !reflect.DeepEqual(got.Value, want) {
			t.Errorf("Decode(%q) = %#v, want %#v", c, got.Value, want)
		}
	}
}

func TestDecodeErrors(t *testing.T) {
	for _, c := range []string{
		``, `[]`, `"x"`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":01}`, `{"a":-}`, `{"a":1.}`,
		`{"a":1e}`, `{"a":tru}`, `{"a":"x}`, "{\"a\":\"\x01\"}", `{"a":"\q"}`, `{"a":"\u12"}`,
		`{} {}`, `{"a":[1 2]}`, `{'a':1}`,
	} {
		if _, err := Decode([]byte(c)); err == nil {
			t.Errorf("Decode(%q) succeeded, want an error", c)
		}
	}
}

func FuzzDecode(f *testing.F) {
	for _, c := range decodeCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := stdDecode(b)
		got, gerr := Decode(b)
		if _, isObj := want.(map[string]any); werr == nil && !isObj {
			werr = errors.New("not an object")
		}
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("Decode(%q): error %v, encoding/json: %v", b, gerr, werr)
		}
		if werr == nil && !reflect.DeepEqual(got.Value, want) {
			t.Fatalf("Decode(%q) = %#v, encoding/json %#v", b, got.Value, want)
		}
	})
}
