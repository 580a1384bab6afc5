package validate

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	apb "github.com/google/fhir/go/proto/google/fhir/proto/annotations_go_proto"

	"github.com/fhirserver/fhirserver/fhir"
)

// libIssue is one error reported by the library: where, what, and extra
// details (often the offending value or member name).
type libIssue struct {
	Path        string
	Details     string
	Diagnostics string
}

// libraryIssues reads the library's errors. They are of an internal type
// (jsonpbhelper.UnmarshalError, or a list of them) whose text drops the
// member names and values, so the exported fields Path, Details and
// Diagnostics are read by reflection. ok is false for any other error.
func libraryIssues(err error) (issues []libIssue, ok bool) {
	v := reflect.ValueOf(err)
	if v.Kind() == reflect.Slice {
		for i := 0; i < v.Len(); i++ {
			li, ok := libIssueOf(v.Index(i))
			if !ok {
				return nil, false
			}
			issues = append(issues, li)
		}
		return issues, len(issues) > 0
	}
	li, ok := libIssueOf(v)
	if !ok {
		return nil, false
	}
	return []libIssue{li}, true
}

func libIssueOf(v reflect.Value) (libIssue, bool) {
	for v.Kind() == reflect.Interface || v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return libIssue{}, false
		}
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return libIssue{}, false
	}
	field := func(name string) (string, bool) {
		f := v.FieldByName(name)
		if !f.IsValid() || f.Kind() != reflect.String {
			return "", false
		}
		return f.String(), true
	}
	path, ok1 := field("Path")
	details, ok2 := field("Details")
	diag, ok3 := field("Diagnostics")
	if !ok1 || !ok2 || !ok3 {
		return libIssue{}, false
	}
	return libIssue{Path: path, Details: details, Diagnostics: diag}, true
}

// translate turns library issues into client messages with FHIR paths.
func (v *Validator) translate(lib []libIssue) []issue {
	out := make([]issue, 0, len(lib))
	for _, li := range lib {
		out = append(out, v.translateOne(li))
	}
	return out
}

func (v *Validator) translateOne(li libIssue) issue {
	d, diag := li.Details, li.Diagnostics
	raw := li.Path
	if d == "unknown resource type" {
		// The library appends the unknown type to the path.
		if i := strings.LastIndexByte(raw, '.'); i >= 0 {
			raw = raw[:i]
		}
	}
	path := v.normalizePath(raw)
	at := path
	if at == "" {
		at = "the top level"
	}
	switch {
	case d == "unknown field":
		name := unquote(diag)
		return issue{expr: join(path, name), msg: fmt.Sprintf("unknown field %q at %s", name, at)}
	case d == "invalid field" || strings.HasPrefix(d, "invalid type: "):
		// A member that exists only in the library's protobuf model (for
		// example "patientId" in a Reference, "valueUs" in a date).
		parent, name := splitLast(path)
		return issue{expr: path, msg: fmt.Sprintf("unknown field %q at %s", name, orTop(parent))}
	case d == "unknown resource type":
		return issue{expr: path, msg: fmt.Sprintf("unknown resource type %s at %s", quoted(diag), at)}
	case strings.HasPrefix(d, "missing required field "):
		name := unquote(strings.TrimPrefix(d, "missing required field "))
		return issue{expr: join(path, name), msg: fmt.Sprintf("missing required field %q at %s", name, at)}
	case strings.HasPrefix(d, "cannot accept multiple values for "):
		name := strings.TrimSuffix(strings.TrimPrefix(d, "cannot accept multiple values for "), " field")
		return issue{expr: join(path, name), msg: fmt.Sprintf("more than one value for %s[x] at %s (%s is one too many)", name, at, quoted(diag))}
	case d == "code type mismatch":
		val, _, _ := strings.Cut(diag, " is not a ")
		return issue{expr: path, msg: fmt.Sprintf("code %s at %s is not in the required value set", short(val), at)}
	case strings.HasPrefix(d, "expected "):
		msg := d + " at " + at
		if found, ok := strings.CutPrefix(diag, "found "); ok && found != "" {
			msg += ", found " + short(found)
		}
		return issue{expr: path, msg: msg}
	case strings.HasPrefix(d, "invalid ") && strings.HasSuffix(d, " format"):
		typ := strings.TrimSuffix(strings.TrimPrefix(d, "invalid "), " format")
		return issue{expr: path, msg: fmt.Sprintf("invalid %s format at %s", strings.ToLower(typ), at)}
	case d == "invalid JSON" && path == "":
		// The library's JSON reader refused what encoding/json accepts,
		// such as a number beyond the float64 range.
		return issue{msg: "a value in the body could not be read (for example, a number out of range)"}
	case d == "invalid JSON":
		return issue{expr: path, msg: "invalid value at " + at}
	default:
		return issue{expr: path, msg: d + " at " + at}
	}
}

// normalizePath turns a library path into a FHIRPath-like one: it drops the
// resource type names the library inserts after "contained[i]" and
// "entry[i].resource", and rewrites choice elements from the validator's
// "value.quantity" form to "valueQuantity".
func (v *Validator) normalizePath(p string) string {
	if p == "" {
		return ""
	}
	segs := strings.Split(p, ".")
	out := segs[:1:1]
	md := v.resources[segs[0]]
	for i := 1; i < len(segs); i++ {
		s := segs[i]
		if s != "" && s[0] >= 'A' && s[0] <= 'Z' {
			md = v.resources[s]
			continue
		}
		if md == nil {
			out = append(out, s)
			continue
		}
		name, idx := splitIndex(s)
		fd := md.Fields().ByJSONName(name)
		if fd == nil {
			md = nil
			out = append(out, s)
			continue
		}
		if cm := fd.Message(); cm != nil && isChoice(cm) && idx == "" && i+1 < len(segs) {
			tname, tidx := splitIndex(segs[i+1])
			if cf := cm.Fields().ByJSONName(tname); cf != nil {
				out = append(out, name+strings.ToUpper(tname[:1])+tname[1:]+tidx)
				md = cf.Message()
				i++
				continue
			}
		}
		out = append(out, s)
		md = fd.Message()
	}
	return strings.Join(out, ".")
}

func isChoice(md protoreflect.MessageDescriptor) bool {
	return proto.HasExtension(md.Options(), apb.E_IsChoiceType)
}

func splitIndex(s string) (name, index string) {
	if i := strings.IndexByte(s, '['); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

func splitLast(p string) (parent, last string) {
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i], p[i+1:]
	}
	return "", p
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

func orTop(p string) string {
	if p == "" {
		return "the top level"
	}
	return p
}

func unquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// quoted shows a value the library already quoted, shortened.
func quoted(s string) string {
	return strconv.Quote(truncate(unquote(s)))
}

// short shortens a raw JSON value for a message.
func short(s string) string {
	if len(s) <= 64 {
		return s
	}
	return s[:64] + "..."
}

// toError sorts the issues by path, removes those at a path already
// reported, and builds one error that lists them.
func toError(issues []issue) *fhir.Error {
	sort.SliceStable(issues, func(i, j int) bool { return issues[i].expr < issues[j].expr })
	var kept []issue
	seen := map[string]bool{}
	for _, is := range issues {
		if seen[is.expr] {
			continue
		}
		seen[is.expr] = true
		kept = append(kept, is)
	}
	more := 0
	if len(kept) > maxIssues {
		more = len(kept) - maxIssues
		kept = kept[:maxIssues]
	}
	msgs := make([]string, len(kept))
	var exprs []string
	for i, is := range kept {
		msgs[i] = is.msg
		if is.expr != "" {
			exprs = append(exprs, is.expr)
		}
	}
	msg := strings.Join(msgs, "; ")
	if more > 0 {
		msg += fmt.Sprintf("; and %d more problems", more)
	}
	return &fhir.Error{Kind: fhir.KindInvalid, Message: msg, Expression: exprs}
}
