package sqlstore

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/fhir/index"
)

// The search index is written at write time, in the resource's transaction:
// the rows fhir/index extracts from the stored body go to one table per
// parameter type (see migrations/*/00002_search_index.sql). An update
// replaces all rows of the resource, a delete removes them.
//
// A resource whose values cannot be indexed (index.Extract fails, e.g. on an
// unparseable date that validation should have refused) is refused with
// KindInvalid rather than stored half indexed: it could never be found by the
// parameter concerned, and nothing would tell. Resources that merely have no
// value for a parameter, or a value of a type a parameter cannot index, are
// stored with the rows they have.

// Open ends of a date range.
const (
	dateMin = math.MinInt64
	dateMax = math.MaxInt64
)

// colKind is how a column is bound.
type colKind int

const (
	colText colKind = iota
	colInt
	colNumeric // a decimal string, or nil for NULL
)

type column struct {
	name string
	kind colKind
}

type table int

const (
	tString table = iota
	tToken
	tReference
	tDate
	tNumber
	tQuantity
	tURI
	tCompartment
	tText
	tPosition
	nTables
)

// tableDef describes an index table; its first three columns are always
// tenant, type, id.
type tableDef struct {
	name string
	cols []column
}

// indexTables lists the index tables; it is never modified.
var indexTables = [nTables]tableDef{
	tString:      {"idx_string", cols("param", "grp:int", "value", "norm")},
	tToken:       {"idx_token", cols("param", "grp:int", "system", "code", "text_norm", "type_system", "type_code", "patient")},
	tReference:   {"idx_reference", cols("param", "grp:int", "target_type", "target_id", "version", "url", "ident_system", "ident_value")},
	tDate:        {"idx_date", cols("param", "grp:int", "low:int", "high:int", "patient")},
	tNumber:      {"idx_number", cols("param", "grp:int", "value:num", "low:num", "high:num")},
	tQuantity:    {"idx_quantity", cols("param", "grp:int", "value:num", "low:num", "high:num", "system", "code", "unit")},
	tURI:         {"idx_uri", cols("param", "grp:int", "value")},
	tCompartment: {"idx_compartment", cols("comp_type", "comp_id")},
	tText:        {"idx_text", cols("param", "content")},
	tPosition:    {"idx_position", cols("param", "lat:num", "lon:num")},
}

func cols(names ...string) []column {
	out := []column{{"tenant", colText}, {"type", colText}, {"id", colText}}
	for _, n := range names {
		c := column{name: n}
		if name, kind, ok := strings.Cut(n, ":"); ok {
			c.name = name
			switch kind {
			case "int":
				c.kind = colInt
			case "num":
				c.kind = colNumeric
			}
		}
		out = append(out, c)
	}
	return out
}

// indexBatch collects the index rows of several resources, column by
// column, ready for one bulk insert per table.
type indexBatch struct {
	tenant string
	rows   [nTables]int
	text   [nTables][][]string // per column (after tenant); nil for non-text columns
	ints   [nTables][][]int64
	nums   [nTables][][]*string
}

func newIndexBatch(tenant string) *indexBatch {
	b := &indexBatch{tenant: tenant}
	for t := range nTables {
		n := len(indexTables[t].cols)
		b.text[t] = make([][]string, n)
		b.ints[t] = make([][]int64, n)
		b.nums[t] = make([][]*string, n)
	}
	return b
}

// add appends one row; vals are the columns after tenant, in order, as
// string, int64 or *string (numeric).
func (b *indexBatch) add(t table, vals ...any) {
	for i, v := range vals {
		c := i + 1
		switch v := v.(type) {
		case string:
			b.text[t][c] = append(b.text[t][c], v)
		case int64:
			b.ints[t][c] = append(b.ints[t][c], v)
		case *string:
			b.nums[t][c] = append(b.nums[t][c], v)
		default:
			panic(fmt.Sprintf("sqlstore: index value of type %T", v))
		}
	}
	b.rows[t]++
}

func numOrNull(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func dateLow(t time.Time) int64 {
	if t.IsZero() {
		return dateMin
	}
	return t.UnixMicro()
}

func dateHigh(t time.Time) int64 {
	if t.IsZero() {
		return dateMax
	}
	return t.UnixMicro()
}

// skipParam reports whether rows of a parameter are not stored because the
// resources table answers it (_id, _lastUpdated).
func skipParam(code string) bool { return code == "_id" || code == "_lastUpdated" }

// patientParam is the search parameter whose targets fill the patient
// column of token and date rows (see migrations/*/00007_patient_index.sql).
const patientParam = "patient"

// patientsOf returns the ids of the patients the patient parameter refers
// to (local references), without repeats: the token and date rows of the
// resource are written once for each, or once with "" when there is none.
func patientsOf(e *index.Entries) []string {
	var out []string
	for _, r := range e.References {
		if r.Code == patientParam && r.URL == "" && r.TargetType == "Patient" && r.TargetID != "" && !slices.Contains(out, r.TargetID) {
			out = append(out, r.TargetID)
		}
	}
	if len(out) == 0 {
		return []string{""}
	}
	return out
}

// addEntries adds the rows of one resource.
func (b *indexBatch) addEntries(typ, id string, e *index.Entries) {
	for _, s := range e.Strings {
		if !skipParam(s.Code) {
			b.addString(typ, id, s.Code, 0, &s)
		}
	}
	patients := patientsOf(e)
	for _, p := range patients {
		for _, t := range e.Tokens {
			if !skipParam(t.Code) {
				b.addToken(typ, id, t.Code, 0, &t, p)
			}
		}
		for _, d := range e.Dates {
			if !skipParam(d.Code) {
				b.addDate(typ, id, d.Code, 0, &d, p)
			}
		}
	}
	for _, r := range e.References {
		b.addReference(typ, id, r.Code, 0, &r)
	}
	for _, n := range e.Numbers {
		b.addNumber(typ, id, n.Code, 0, &n)
	}
	for _, q := range e.Quantities {
		b.addQuantity(typ, id, q.Code, 0, &q)
	}
	for _, u := range e.URIs {
		b.add(tURI, typ, id, u.Code, int64(0), u.Value)
	}
	for g, c := range e.Composites {
		grp := int64(g + 1)
		for i, p := range c.Parts {
			code := compositeParam(c.Code, i)
			switch {
			case p.String != nil:
				b.addString(typ, id, code, grp, p.String)
			case p.Token != nil:
				b.addToken(typ, id, code, grp, p.Token, "")
			case p.Reference != nil:
				b.addReference(typ, id, code, grp, p.Reference)
			case p.Date != nil:
				b.addDate(typ, id, code, grp, p.Date, "")
			case p.Number != nil:
				b.addNumber(typ, id, code, grp, p.Number)
			case p.Quantity != nil:
				b.addQuantity(typ, id, code, grp, p.Quantity)
			case p.URI != nil:
				b.add(tURI, typ, id, code, grp, p.URI.Value)
			}
		}
	}
	for _, c := range e.Compartments {
		b.add(tCompartment, typ, id, c.Type, c.ID)
	}
	for _, p := range e.Positions {
		if p.Latitude != "" && p.Longitude != "" {
			b.add(tPosition, typ, id, p.Code, numOrNull(p.Latitude), numOrNull(p.Longitude))
		}
	}
	if e.Narrative != "" {
		b.add(tText, typ, id, "_text", e.Narrative)
	}
	if e.Content != "" {
		b.add(tText, typ, id, "_content", e.Content)
	}
}

// compositeParam names the rows of component i of composite parameter code.
func compositeParam(code string, i int) string { return code + ":" + strconv.Itoa(i) }

func (b *indexBatch) addString(typ, id, code string, grp int64, s *index.String) {
	b.add(tString, typ, id, code, grp, s.Value, s.Norm)
}

func (b *indexBatch) addToken(typ, id, code string, grp int64, t *index.Token, patient string) {
	b.add(tToken, typ, id, code, grp, t.System, t.Value, t.TextNorm, t.TypeSystem, t.TypeCode, patient)
}

func (b *indexBatch) addReference(typ, id, code string, grp int64, r *index.Reference) {
	b.add(tReference, typ, id, code, grp, r.TargetType, r.TargetID, r.Version, r.URL, r.IdentifierSystem, r.IdentifierValue)
}

func (b *indexBatch) addDate(typ, id, code string, grp int64, d *index.Date, patient string) {
	b.add(tDate, typ, id, code, grp, dateLow(d.Low), dateHigh(d.High), patient)
}

func (b *indexBatch) addNumber(typ, id, code string, grp int64, n *index.Number) {
	b.add(tNumber, typ, id, code, grp, numOrNull(n.Value), numOrNull(n.Low), numOrNull(n.High))
}

func (b *indexBatch) addQuantity(typ, id, code string, grp int64, q *index.Quantity) {
	b.add(tQuantity, typ, id, code, grp, numOrNull(q.Value), numOrNull(q.Low), numOrNull(q.High), q.System, q.Unit, q.UnitText)
}

// value returns column c of row r of table t, for a VALUES list.
func (b *indexBatch) value(t table, c, r int) any {
	switch indexTables[t].cols[c].kind {
	case colInt:
		return b.ints[t][c][r]
	case colNumeric:
		if p := b.nums[t][c][r]; p != nil {
			return *p
		}
		return nil
	}
	return b.text[t][c][r]
}

// extract runs the Extract hook on a stored body.
func (s *Store) extract(typ string, body []byte) (*index.Entries, error) {
	x := s.Extract
	if x == nil {
		x = index.Extract
	}
	e, err := x(typ, body)
	if err != nil {
		if fe, ok := err.(*fhir.Error); ok && fe.Kind != fhir.KindInternal {
			return nil, &fhir.Error{Kind: fe.Kind, Message: fmt.Sprintf("%s/%s cannot be indexed for search: %s", typ, idOf(body), fe.Message), Err: fe.Err}
		}
		return nil, fmt.Errorf("indexing %s: %w", typ, err)
	}
	if s.FullText {
		e.Narrative, e.Content = index.FullText(body)
	}
	return e, nil
}

func idOf(body []byte) string {
	_, id, _ := fhir.Envelope(body)
	return id
}

// writeIndex replaces the index rows of the resources keys (their old rows,
// if any, are deleted when replace is set) by the rows in b.
func (s *Store) writeIndex(ctx context.Context, tx Querier, tenant string, replace []resourceKey, b *indexBatch) error {
	if s.Driver.Arrays() {
		return s.writeIndexArrays(ctx, tx, tenant, replace, b)
	}
	if err := s.deleteIndex(ctx, tx, tenant, replace); err != nil {
		return err
	}
	return s.insertIndexValues(ctx, tx, b)
}

// multiStmt collects data-modifying statements that run as the parts of
// one WITH statement, sharing one list of bind values (PostgreSQL: one round
// trip for a whole batch).
type multiStmt struct {
	a     args
	parts []string
	// guard, when set, names the part whose rows the index rows depend on:
	// they are inserted only when it returned a row (a create that met an
	// existing id inserts nothing, also outside a transaction).
	guard string
}

func (m *multiStmt) exec(ctx context.Context, tx Querier) error {
	if len(m.parts) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString("WITH ")
	for i, p := range m.parts {
		if i > 0 {
			q.WriteString(", ")
		}
		fmt.Fprintf(&q, "w%d AS (%s)", i, p)
	}
	q.WriteString(" SELECT 1")
	_, err := tx.Exec(ctx, q.String(), m.a...)
	return err
}

// writeIndexArrays does the whole replacement in one statement.
func (s *Store) writeIndexArrays(ctx context.Context, tx Querier, tenant string, replace []resourceKey, b *indexBatch) error {
	var m multiStmt
	indexParts(&m, tenant, replace, b)
	if err := m.exec(ctx, tx); err != nil {
		return fmt.Errorf("writing the search index: %w", err)
	}
	return nil
}

// indexParts adds to m the deletion of the rows of replace and the
// insertion of b, with one array per column inserted from unnest.
func indexParts(m *multiStmt, tenant string, replace []resourceKey, b *indexBatch) {
	a := &m.a
	tenantArg := a.add(tenant) + "::text"
	if len(replace) > 0 {
		types, ids := make([]string, len(replace)), make([]string, len(replace))
		for i, k := range replace {
			types[i], ids[i] = k.typ, k.id
		}
		ta, ia := a.add(types), a.add(ids)
		for t := range nTables {
			m.parts = append(m.parts, "DELETE FROM "+indexTables[t].name+" x USING unnest("+ta+"::text[], "+ia+"::text[]) AS k(t, i) WHERE x.tenant = "+tenantArg+" AND x.type = k.t AND x.id = k.i")
		}
	}
	for t := range nTables {
		if b.rows[t] == 0 {
			continue
		}
		def := indexTables[t]
		names := make([]string, len(def.cols))
		arrays := make([]string, 0, len(def.cols)-1)
		aliases := make([]string, 0, len(def.cols)-1)
		sel := []string{tenantArg}
		for c, col := range def.cols {
			names[c] = col.name
			if c == 0 {
				continue
			}
			alias := "c" + strconv.Itoa(c)
			aliases = append(aliases, alias)
			switch col.kind {
			case colInt:
				arrays = append(arrays, a.add(b.ints[t][c])+"::bigint[]")
				sel = append(sel, alias)
			case colNumeric:
				arrays = append(arrays, a.add(b.nums[t][c])+"::text[]")
				sel = append(sel, alias+"::numeric")
			default:
				arrays = append(arrays, a.add(b.text[t][c])+"::text[]")
				sel = append(sel, alias)
			}
		}
		part := "INSERT INTO " + def.name + " (" + strings.Join(names, ", ") + ") SELECT " + strings.Join(sel, ", ") +
			" FROM unnest(" + strings.Join(arrays, ", ") + ") AS u(" + strings.Join(aliases, ", ") + ")"
		if m.guard != "" {
			part += " WHERE EXISTS (SELECT 1 FROM " + m.guard + ")"
		}
		m.parts = append(m.parts, part)
	}
}

// maxParams bounds the bind values of one VALUES statement: modernc's
// SQLite looks each numbered parameter up by name, which grows faster than
// the statement, so several small statements beat one large one.
const maxParams = 300

// deleteIndex removes the index rows of keys, with IN lists per type.
func (s *Store) deleteIndex(ctx context.Context, tx Querier, tenant string, keys []resourceKey) error {
	if len(keys) == 0 {
		return nil
	}
	byType := map[string][]string{}
	for _, k := range keys {
		byType[k.typ] = append(byType[k.typ], k.id)
	}
	types := make([]string, 0, len(byType))
	for t := range byType {
		types = append(types, t)
	}
	sort.Strings(types)
	for _, typ := range types {
		ids := byType[typ]
		for start := 0; start < len(ids); start += importChunk {
			chunk := ids[start:min(start+importChunk, len(ids))]
			for t := range nTables {
				var a args
				cond := "tenant = " + a.add(tenant) + " AND type = " + a.add(typ) + " AND id "
				if len(chunk) == 1 {
					cond += "= " + a.add(chunk[0])
				} else {
					ph := make([]string, len(chunk))
					for i, id := range chunk {
						ph[i] = a.add(id)
					}
					cond += "IN (" + strings.Join(ph, ", ") + ")"
				}
				if _, err := tx.Exec(ctx, "DELETE FROM "+indexTables[t].name+" WHERE "+cond, a...); err != nil {
					return fmt.Errorf("deleting search index rows: %w", err)
				}
			}
		}
	}
	return nil
}

// insertIndexValues inserts b with multi-row VALUES statements.
func (s *Store) insertIndexValues(ctx context.Context, tx Querier, b *indexBatch) error {
	for t := range nTables {
		n := b.rows[t]
		if n == 0 {
			continue
		}
		def := indexTables[t]
		names := make([]string, len(def.cols))
		for c, col := range def.cols {
			names[c] = col.name
		}
		head := "INSERT INTO " + def.name + " (" + strings.Join(names, ", ") + ") VALUES "
		perStmt := max(1, maxParams/len(def.cols))
		for start := 0; start < n; start += perStmt {
			end := min(start+perStmt, n)
			var a args
			tenantArg := a.add(b.tenant)
			var q strings.Builder
			q.WriteString(head)
			for r := start; r < end; r++ {
				if r > start {
					q.WriteString(", ")
				}
				q.WriteString("(")
				q.WriteString(tenantArg)
				for c := 1; c < len(def.cols); c++ {
					q.WriteString(", ")
					q.WriteString(a.add(b.value(t, c, r)))
				}
				q.WriteString(")")
			}
			if _, err := tx.Exec(ctx, q.String(), a...); err != nil {
				return fmt.Errorf("writing the search index: %w", err)
			}
		}
	}
	return nil
}
