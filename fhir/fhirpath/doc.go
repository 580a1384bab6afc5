// Package fhirpath compiles and evaluates the subset of FHIRPath that FHIR R4
// search parameters use, on resources decoded from JSON. It imports only the
// standard library and knows nothing of the FHIR definitions: the caller
// passes a Model (package fhir provides the R4 one) for element types.
//
// Supported:
//   - paths: Observation.code.coding, name (relative to the focus), `quoted`
//     names; a path that starts with a type name keeps the items of that
//     type (Resource.id works on every resource);
//   - choice elements: Observation.value yields valueQuantity,
//     valueCodeableConcept, ... typed as Quantity, CodeableConcept, ...;
//   - type operators and functions: is, as, (X as Quantity), .as(T),
//     .is(T), ofType(T), with subtypes (Age is a Quantity, code is a string)
//     and FHIR./System. prefixes;
//   - operators: | (union), =, !=, and, or, xor, implies;
//   - indexer with an integer literal: Bundle.entry[0];
//   - functions: where, exists, all, select, empty, not, first, last, tail,
//     single, count, distinct, hasValue, ofType, as, is, extension('url'),
//     resolve();
//   - literals: 'string', integers and decimals, true, false, {};
//   - variables: $this, %resource, %rootResource, %context, %ucum, %sct,
//     %loinc.
//
// resolve() does not read a database: a "#id" reference yields the contained
// resource, any other reference a node that only carries the target's type
// (from "Patient/1", an absolute URL or Reference.type), which is what
// where(resolve() is Patient) needs.
//
// Not supported (Compile fails): arithmetic, string concatenation (&),
// ordering comparisons (<, >, <=, >=), equivalence (~, !~), in/contains,
// date/time and quantity literals, $index/$total, and functions other than
// those above. 'as' and as() are applied item by item instead of failing on
// collections of several items. Primitive extensions (_element) are not
// visible to expressions.
package fhirpath
