package main

import (
	"fmt"
	"time"

	"github.com/fhirserver/fhirserver/oauth"
	"github.com/fhirserver/fhirserver/store"
)

// launchCmd manages EHR launch contexts.
type launchCmd struct {
	Create launchCreateCmd `cmd:"" help:"Create an EHR launch context and print its opaque launch value."`
}

type launchCreateCmd struct {
	Patient   string        `name:"patient" required:"" help:"Patient id of the context."`
	Encounter string        `name:"encounter" help:"Encounter id of the context."`
	User      string        `name:"user" help:"The user the launch is for (anyone when empty)."`
	TTL       time.Duration `name:"ttl" default:"1h" help:"How long the launch value may be used."`
}

func (c *launchCreateCmd) Run(e *env) error {
	st, err := openOAuthStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	if c.User != "" {
		if _, err := st.GetUser(e.ctx, store.DefaultTenant, c.User); err != nil {
			return usageOrFail(err)
		}
	}
	v, err := oauth.CreateLaunch(e.ctx, st, oauth.LaunchSpec{
		Tenant: store.DefaultTenant, Patient: c.Patient, Encounter: c.Encounter, Username: c.User, TTL: c.TTL,
	})
	if err != nil {
		return usageOrFail(err)
	}
	fmt.Fprintln(e.stdout, v)
	return nil
}
