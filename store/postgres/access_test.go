package postgres_test

import (
	"testing"

	"github.com/fhirserver/fhirserver/store/storetest"
)

func TestAccessContract(t *testing.T) { storetest.RunAccess(t, opener) }
