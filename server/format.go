package server

import (
	"bytes"
	"context"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"

	"github.com/fhirserver/fhirserver/fhir"
)

const (
	ctFHIRJSON = "application/fhir+json; charset=utf-8"
	ctJSON     = "application/json; charset=utf-8"
)

// format is how a response body is written: its Content-Type and whether it
// is indented (_pretty=true). Stored bytes are compact, so the default costs
// nothing.
type format struct {
	contentType string
	pretty      bool
}

func defaultFormat() format { return format{contentType: ctFHIRJSON} }

// render returns body as it goes on the wire.
func (f format) render(body []byte) []byte {
	if !f.pretty || len(body) == 0 {
		return body
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		// Bodies are compact JSON written by us or by the store; should one
		// not be, sending it unindented is better than failing.
		return body
	}
	return buf.Bytes()
}

type formatKey struct{}

func withFormat(ctx context.Context, f format) context.Context {
	return context.WithValue(ctx, formatKey{}, f)
}

// formatFrom returns the negotiated format, or the default for requests that
// never reached negotiation (health checks, unknown paths, early failures).
func formatFrom(ctx context.Context) format {
	if f, ok := ctx.Value(formatKey{}).(format); ok {
		return f
	}
	return defaultFormat()
}

// negotiate settles the response format from _format, Accept and _pretty
// before a handler runs, so that a request whose answer cannot be written
// is refused (406) before it changes anything.
func (h *Handler) negotiate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			h.writeError(w, r, fhir.Errorf(fhir.KindInvalid, "the query string is malformed: %v", err))
			return
		}
		f := defaultFormat()
		f.pretty = q.Get("_pretty") == "true"
		// Errors below are written indented too when _pretty asked for it.
		r = r.WithContext(withFormat(r.Context(), f))
		if v := q.Get("_format"); v != "" {
			ct, ok := formatParam(v)
			if !ok {
				h.writeError(w, r, fhir.Errorf(fhir.KindNotAcceptable,
					"_format %q is not supported; this server writes json (application/fhir+json or application/json)", v))
				return
			}
			f.contentType = ct
		} else if accept := r.Header.Values("Accept"); len(accept) > 0 {
			ct, ok := acceptable(strings.Join(accept, ","))
			if !ok {
				h.writeError(w, r, fhir.Errorf(fhir.KindNotAcceptable,
					"none of the media types in Accept can be written; this server writes application/fhir+json and application/json"))
				return
			}
			f.contentType = ct
		}
		next.ServeHTTP(w, r.WithContext(withFormat(r.Context(), f)))
	})
}

// jsonType maps a media type this server reads and writes to the
// Content-Type of a response; ok is false for anything else.
func jsonType(mediaType string, params map[string]string) (ct string, ok bool) {
	if v, has := params["fhirversion"]; has && v != "4.0" {
		return "", false // a FHIR version other than R4
	}
	switch mediaType {
	case "application/fhir+json", "application/json+fhir":
		return ctFHIRJSON, true
	case "application/json":
		return ctJSON, true
	}
	return "", false
}

// formatParam reads _format: the short form "json" or a JSON media type.
func formatParam(v string) (string, bool) {
	if strings.EqualFold(strings.TrimSpace(v), "json") {
		return ctFHIRJSON, true
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil {
		// A "+" in an unencoded query string arrives as a space.
		if mt, params, err = mime.ParseMediaType(strings.ReplaceAll(v, " ", "+")); err != nil {
			return "", false
		}
	}
	return jsonType(mt, params)
}

// acceptable picks the response type from an Accept header: the supported
// media range with the highest q wins, wildcards meaning FHIR JSON. Ranges
// that cannot be parsed are skipped, as browsers' long headers often hold one.
func acceptable(header string) (string, bool) {
	type rng struct {
		ct string
		q  float64
	}
	var ranges []rng
	for _, part := range strings.Split(header, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		mt, params, err := mime.ParseMediaType(part)
		if err != nil {
			continue
		}
		q := 1.0
		if v, has := params["q"]; has {
			if q, err = strconv.ParseFloat(v, 64); err != nil {
				continue
			}
		}
		if q <= 0 {
			continue
		}
		var ct string
		switch mt {
		case "*/*", "application/*":
			ct = ctFHIRJSON
		default:
			var ok bool
			if ct, ok = jsonType(mt, params); !ok {
				continue
			}
		}
		ranges = append(ranges, rng{ct, q})
	}
	if len(ranges) == 0 {
		return "", false
	}
	sort.SliceStable(ranges, func(i, j int) bool { return ranges[i].q > ranges[j].q })
	return ranges[0].ct, true
}

// checkContentType accepts the JSON media types (charset utf-8 if given) for
// request bodies; anything else is 415.
func checkContentType(r *http.Request) error {
	v := r.Header.Get("Content-Type")
	if v == "" {
		return fhir.Errorf(fhir.KindUnsupportedMediaType,
			"Content-Type is missing; send application/fhir+json")
	}
	mt, params, err := mime.ParseMediaType(v)
	if err != nil {
		return fhir.Errorf(fhir.KindUnsupportedMediaType, "Content-Type %q cannot be parsed", v)
	}
	if cs, has := params["charset"]; has && !strings.EqualFold(cs, "utf-8") && !strings.EqualFold(cs, "utf8") {
		return fhir.Errorf(fhir.KindUnsupportedMediaType, "charset %q is not supported; send utf-8", cs)
	}
	if _, ok := jsonType(mt, params); !ok {
		return fhir.Errorf(fhir.KindUnsupportedMediaType,
			"Content-Type %q is not supported; send application/fhir+json or application/json", mt)
	}
	return nil
}
