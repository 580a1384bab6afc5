package importer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/uuid"

	"github.com/fhirserver/fhirserver/fhir"
)

// batcher groups items into batches of at most size, and starts a new batch
// when a resource repeats (same type and id), so that one store call never
// writes the same resource twice.
type batcher struct {
	size  int
	send  func(batch) bool
	cur   []item
	keys  map[string]bool
	bytes int64 // input bytes since the last batch
}

func (b *batcher) add(it item) bool {
	key := it.typ + "/" + it.id
	if b.keys[key] {
		if !b.flush() {
			return false
		}
	}
	if b.keys == nil {
		b.keys = map[string]bool{}
	}
	b.keys[key] = true
	b.cur = append(b.cur, it)
	if len(b.cur) >= b.size {
		return b.flush()
	}
	return true
}

func (b *batcher) flush() bool {
	if len(b.cur) == 0 {
		return true
	}
	ok := b.send(batch{items: b.cur, bytes: b.bytes})
	b.cur, b.keys, b.bytes = nil, nil, 0
	return ok
}

// readNDJSON reads one resource per line. Blank lines are ignored.
func (r *run) readNDJSON(ctx context.Context, f inputFile, send func(batch) bool) error {
	file, err := r.fsys.Open(f.path)
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer file.Close()
	br := bufio.NewReaderSize(file, 1<<20)
	b := &batcher{size: r.batchSize, send: send}
	for line := 1; ; line++ {
		if ctx.Err() != nil {
			return nil
		}
		raw, err := br.ReadBytes('\n')
		b.bytes += int64(len(raw))
		if len(bytes.TrimSpace(raw)) > 0 {
			it, perr := prepare(raw, false, "")
			if perr != nil {
				r.skip(f, -1, line, perr)
			} else {
				it.at = line
				if !b.add(it) {
					return nil
				}
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading line %d: %w", line, err)
		}
	}
	b.flush()
	return nil
}

// prepare compacts a resource and reads its type and id; fallbackID is used
// when the resource has no id, and a new UUID when that is empty too. valid
// says that raw is known to be valid JSON.
func prepare(raw []byte, valid bool, fallbackID string) (item, error) {
	var body []byte
	if valid {
		body = compactValid(make([]byte, 0, len(raw)), raw)
	} else {
		var buf bytes.Buffer
		buf.Grow(len(raw))
		if err := json.Compact(&buf, raw); err != nil {
			return item{}, fhir.Errorf(fhir.KindInvalid, "not valid JSON: %v", err)
		}
		body = buf.Bytes()
	}
	if len(body) == 0 || body[0] != '{' {
		return item{}, fhir.Errorf(fhir.KindInvalid, "a resource must be a JSON object")
	}
	typ, id, err := envelope(body)
	if err != nil {
		return item{}, err
	}
	if typ == "" {
		return item{}, fhir.Errorf(fhir.KindInvalid, "missing resourceType")
	}
	if id == "" {
		id = fallbackID
	}
	if id == "" {
		id = uuid.NewString()
	}
	if !fhir.ValidID(id) {
		return item{}, fhir.Errorf(fhir.KindInvalid, "%q is not a valid id", id)
	}
	return item{typ: typ, id: id, body: body}, nil
}

// rawEntry is what the importer reads of a Bundle entry.
type rawEntry struct {
	FullURL  string          `json:"fullUrl"`
	Resource json.RawMessage `json:"resource"`
	Request  *struct {
		Method string `json:"method"`
		URL    string `json:"url"`
	} `json:"request"`
	err error // the entry could not be read
}

// member is a top-level member of a JSON object, kept raw.
type member struct {
	key string
	raw json.RawMessage
}

// readJSON reads a Bundle (its entries decoded one at a time) or a single
// resource.
func (r *run) readJSON(ctx context.Context, f inputFile, send func(batch) bool) error {
	file, err := r.fsys.Open(f.path)
	if err != nil {
		return fmt.Errorf("opening: %w", err)
	}
	defer file.Close()
	dec := json.NewDecoder(bufio.NewReaderSize(file, 1<<20))
	dec.UseNumber()
	if tok, err := dec.Token(); errors.Is(err, io.EOF) {
		return errors.New("the file is empty")
	} else if err != nil {
		return fmt.Errorf("reading JSON: %w", err)
	} else if tok != json.Delim('{') {
		return errors.New("not a JSON object")
	}
	var (
		resourceType string
		bundleType   string
		entries      []rawEntry
		rawEntries   json.RawMessage // "entry" seen before resourceType
		members      []member
	)
	for dec.More() {
		if ctx.Err() != nil {
			return nil
		}
		tok, err := dec.Token()
		if err != nil {
			return fmt.Errorf("reading JSON: %w", err)
		}
		key, _ := tok.(string)
		if key == "entry" && resourceType == "Bundle" {
			if entries, err = decodeEntries(dec); err != nil {
				return err
			}
			continue
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return fmt.Errorf("reading JSON member %q: %w", key, err)
		}
		switch key {
		case "resourceType":
			_ = json.Unmarshal(raw, &resourceType)
		case "type":
			_ = json.Unmarshal(raw, &bundleType)
		case "entry":
			rawEntries = raw
		}
		members = append(members, member{key: key, raw: raw})
	}
	if _, err := dec.Token(); err != nil {
		return fmt.Errorf("reading JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("data after the JSON object")
	}

	if resourceType != "Bundle" {
		it, err := prepare(joinMembers(members), true, "")
		if err != nil {
			r.skip(f, -1, -1, err)
			return nil
		}
		it.at = -1
		b := &batcher{size: r.batchSize, send: send, bytes: f.size}
		if b.add(it) {
			b.flush()
		}
		return nil
	}
	switch bundleType {
	case "transaction", "batch", "collection":
	default:
		return fmt.Errorf("unsupported Bundle type %q: only transaction, batch and collection Bundles are imported", bundleType)
	}
	if rawEntries != nil {
		if err := json.Unmarshal(rawEntries, &entries); err != nil {
			return fmt.Errorf("reading Bundle.entry: %w", err)
		}
	}
	return r.sendEntries(f, entries, send)
}

func decodeEntries(dec *json.Decoder) ([]rawEntry, error) {
	if tok, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("reading Bundle.entry: %w", err)
	} else if tok != json.Delim('[') {
		return nil, errors.New("the entry member of the Bundle is not an array")
	}
	var entries []rawEntry
	for dec.More() {
		var e rawEntry
		if err := dec.Decode(&e); err != nil {
			// A member of the wrong JSON type spoils only its entry: the
			// decoder has read past it.
			var te *json.UnmarshalTypeError
			if !errors.As(err, &te) {
				return nil, fmt.Errorf("reading Bundle.entry[%d]: %w", len(entries), err)
			}
			e = rawEntry{err: fhir.Errorf(fhir.KindInvalid, "entry.%s must not be a JSON %s", te.Field, te.Value)}
		}
		entries = append(entries, e)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("reading Bundle.entry: %w", err)
	}
	return entries, nil
}

// joinMembers rebuilds a JSON object from its members.
func joinMembers(ms []member) []byte {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			buf.WriteByte(',')
		}
		k, _ := json.Marshal(m.key)
		buf.Write(k)
		buf.WriteByte(':')
		buf.Write(m.raw)
	}
	buf.WriteByte('}')
	return buf.Bytes()
}

// sendEntries prepares a Bundle's entries: ids first (so that every
// urn:uuid fullUrl has its Type/id), then the references, then batches.
func (r *run) sendEntries(f inputFile, entries []rawEntry, send func(batch) bool) error {
	items := make([]item, 0, len(entries))
	refs := map[string]string{}
	for i, e := range entries {
		it, err := prepareEntry(e)
		entries[i].Resource = nil // the compact copy is all we keep
		if err != nil {
			r.skip(f, i, -1, err)
			continue
		}
		it.at = i
		if isURN(e.FullURL) {
			refs[e.FullURL] = it.typ + "/" + it.id
		}
		items = append(items, it)
	}
	b := &batcher{size: r.batchSize, send: send}
	nBatches := (len(items) + r.batchSize - 1) / r.batchSize
	for i := range items {
		if len(refs) > 0 {
			items[i].body = rewriteReferences(items[i].body, refs)
		}
		// Spread the file's bytes over its batches for progress.
		if nBatches > 0 && i%r.batchSize == 0 {
			b.bytes += f.size / int64(nBatches)
		}
		if !b.add(items[i]) {
			return nil
		}
	}
	b.flush()
	return nil
}

// prepareEntry checks an entry and picks the resource's id: its own, else
// the id of a PUT request URL "Type/id", else the X of a fullUrl urn:uuid:X.
func prepareEntry(e rawEntry) (item, error) {
	if e.err != nil {
		return item{}, e.err
	}
	if e.Request != nil && strings.EqualFold(e.Request.Method, "DELETE") {
		return item{}, fhir.Errorf(fhir.KindNotSupported, "DELETE entries are not imported")
	}
	if len(e.Resource) == 0 || string(e.Resource) == "null" {
		return item{}, fhir.Errorf(fhir.KindInvalid, "entry has no resource")
	}
	fallback := ""
	if e.Request != nil && strings.EqualFold(e.Request.Method, "PUT") {
		if _, id, ok := strings.Cut(strings.SplitN(e.Request.URL, "?", 2)[0], "/"); ok && fhir.ValidID(id) {
			fallback = id
		}
	}
	if fallback == "" && isURN(e.FullURL) {
		if x := e.FullURL[strings.LastIndexByte(e.FullURL, ':')+1:]; fhir.ValidID(x) {
			fallback = x
		}
	}
	return prepare(e.Resource, true, fallback) // checked by the decoder
}

// isURN reports whether a fullUrl is a urn:uuid: or urn:oid: identifier.
func isURN(s string) bool {
	return strings.HasPrefix(s, "urn:uuid:") || strings.HasPrefix(s, "urn:oid:")
}
