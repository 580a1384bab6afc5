package fhir

import "sort"

// CompartmentTypes returns the resource types that define a compartment
// (Device, Encounter, Patient, Practitioner, RelatedPerson), sorted.
func CompartmentTypes() []string {
	reg := registryOnce()
	types := make([]string, 0, len(reg.compartments))
	for c := range reg.compartments {
		types = append(types, c)
	}
	sort.Strings(types)
	return types
}

// CompartmentParams returns the search parameters that put a resource of
// resourceType in a compartment, as the CompartmentDefinition gives them:
// reference parameters of resourceType, or "{def}" for the compartment's own
// resource (Practitioner in the Practitioner compartment). It returns nil
// when resourceType is not a member of the compartment.
//
// A Patient is a member of its own Patient compartment even though the
// definition lists only "link" for it; the same holds for every compartment
// type. Index extraction adds that membership; this function reports the
// definition as given.
func CompartmentParams(compartment, resourceType string) []string {
	return append([]string(nil), registryOnce().compartments[compartment][resourceType]...)
}

// CompartmentMembers returns the resource types that can belong to a
// compartment (those with at least one param), sorted.
func CompartmentMembers(compartment string) []string {
	return append([]string(nil), registryOnce().members[compartment]...)
}

// compartmentRow is one row of the generated compartmentTable.
type compartmentRow struct {
	compartment  string
	resourceType string
	params       []string
}
