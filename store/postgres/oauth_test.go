package postgres_test

import (
	"testing"

	"github.com/fhirserver/fhirserver/store/storetest"
)

func TestOAuthContract(t *testing.T) { storetest.RunOAuth(t, opener) }
