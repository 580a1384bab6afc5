package main

import (
	"fmt"
	"time"

	"github.com/fhirserver/fhirserver/oauth"
)

// keysCmd manages the server's signing keys.
type keysCmd struct {
	Rotate keysRotateCmd `cmd:"" help:"Make new signing keys current; old keys stay published until their tokens expire."`
}

type keysRotateCmd struct{}

func (keysRotateCmd) Run(e *env) error {
	st, err := openOAuthStore(e)
	if err != nil {
		return err
	}
	defer st.Close()
	kids, err := oauth.RotateKeys(e.ctx, st, 2*time.Hour)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "new signing keys: access tokens %s, id_tokens %s; running servers switch within 30 s\n", kids[0], kids[1])
	return nil
}
