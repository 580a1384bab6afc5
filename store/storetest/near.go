package storetest

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"

	"github.com/fhirserver/fhirserver/fhir"
	"github.com/fhirserver/fhirserver/store"
)

const nearTenant = "near"

// testNear checks Location near: the expected sets are computed with the
// haversine formula from the positions below (none close to a search's
// edge, where the store's approximation may differ).
func testNear(t *testing.T, s store.Store, se store.Searcher) {
	ctx := context.Background()
	places := []struct {
		id       string
		lat, lon float64
	}{
		{"boston", 42.3601, -71.0589},
		{"cambridge", 42.3736, -71.1097}, // 4.4 km from Boston
		{"worcester", 42.2626, -71.8023}, // 62 km
		{"new-york", 40.7128, -74.0060},  // 306 km
		{"sydney", -33.8688, 151.2093},
		{"quito", -0.1807, -78.4678},
	}
	for _, p := range places {
		body := fmt.Sprintf(`{"resourceType":"Location","id":%q,"name":%q,"position":{"latitude":%v,"longitude":%v}}`, p.id, p.id, p.lat, p.lon)
		if _, _, err := s.Update(ctx, store.Write{Tenant: nearTenant, Type: "Location", ID: p.id, Body: []byte(body)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := s.Update(ctx, store.Write{Tenant: nearTenant, Type: "Location", ID: "nowhere", Body: []byte(`{"resourceType":"Location","id":"nowhere","name":"no position"}`)}); err != nil {
		t.Fatal(err)
	}
	haversine := func(lat1, lon1, lat2, lon2 float64) float64 {
		rad := math.Pi / 180
		dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
		a := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
		return 2 * 6371.0088 * math.Asin(math.Sqrt(a))
	}
	for _, tc := range []struct {
		near string
		km   float64 // the distance the value stands for
	}{
		{"42.3601|-71.0589|10|km", 10},
		{"42.3601|-71.0589|1|km", 1},
		{"42.3601|-71.0589|100", 100},
		{"42.3601|-71.0589|2000|m", 2},
		{"42.3601|-71.0589|50|[mi_i]", 50 * 1.609344},
		{"42.3601|-71.0589|300|[nmi_i]", 300 * 1.852},
		{"42.3601|-71.0589", 5}, // the default distance
		{"-33.87|151.21|10|km", 10},
		{"0|-78.5|50|km", 50},
	} {
		t.Run(tc.near, func(t *testing.T) {
			f := strings.Split(tc.near, "|")
			lat, _ := strconv.ParseFloat(f[0], 64)
			lon, _ := strconv.ParseFloat(f[1], 64)
			var want []string
			for _, p := range places {
				if haversine(lat, lon, p.lat, p.lon) <= tc.km {
					want = append(want, "Location/"+p.id)
				}
			}
			got := searchAll(t, se, nearTenant, query(t, []string{"Location"}, nil, "near="+strings.ReplaceAll(tc.near, "[", "%5B")))
			if !sameSet(got, want) {
				t.Errorf("found %v, want %v", got, want)
			}
		})
	}
	t.Run("unknown unit", func(t *testing.T) {
		_, err := se.Search(ctx, nearTenant, query(t, []string{"Location"}, nil, "near=42|-71|5|furlong"))
		if fhir.KindOf(err) != fhir.KindInvalid {
			t.Errorf("error %v, want invalid", err)
		}
	})
}
