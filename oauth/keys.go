package oauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v3"

	"github.com/fhirserver/fhirserver/store"
)

// Key uses, as stored.
const (
	useAccess = "access" // ES256, signs access tokens
	useID     = "id"     // RS256, signs id_tokens
	useHMAC   = "hmac"   // keys the HMAC of refresh tokens and codes
	usePepper = "pepper" // keys client-secret hashes, CSRF tokens and the credential cache
)

// KeyStore keeps the server's keys (package store implements it).
type KeyStore interface {
	InitKey(ctx context.Context, k store.SigningKey) (*store.SigningKey, error)
	RotateKey(ctx context.Context, k store.SigningKey) error
	ExtendKey(ctx context.Context, kid string, notAfter time.Time) error
	ListKeys(ctx context.Context, now time.Time) ([]store.SigningKey, error)
}

// publicKey is a key that verifies our tokens.
type publicKey struct {
	kid string
	alg string
	use string
	key crypto.PublicKey
}

// keySnapshot is the key set at one moment; it is replaced, never changed.
type keySnapshot struct {
	access    *ecdsa.PrivateKey
	accessKID string
	id        *rsa.PrivateKey
	idKID     string
	hmac      []byte
	pepper    []byte
	public    map[string]publicKey // by kid
	jwks      []byte               // the published JWKS document
	loaded    time.Time
}

// keyring holds the current keys, reloads them from the database now and
// then (another process may have rotated them), and keeps the NotAfter of
// the keys this process signs with ahead of the tokens it issues, so that a
// rotated key stays published until its last token has expired.
type keyring struct {
	store   KeyStore
	now     func() time.Time
	reload  time.Duration // how often the key set is read again
	horizon time.Duration // longest token lifetime, plus leeway

	mu        sync.Mutex // serialises reloads
	cur       *keySnapshot
	missAfter time.Time // no reload for an unknown kid before then
}

// ensureKeys creates any missing key (first start); servers starting at
// once agree on one key per use.
func ensureKeys(ctx context.Context, ks KeyStore, now time.Time, horizon time.Duration) error {
	have, err := ks.ListKeys(ctx, now)
	if err != nil {
		return err
	}
	current := map[string]bool{}
	for _, k := range have {
		if k.RetiredAt.IsZero() {
			current[k.Use] = true
		}
	}
	for _, use := range []string{useAccess, useID, useHMAC, usePepper} {
		if current[use] {
			continue
		}
		k, err := newKey(use, now, horizon)
		if err != nil {
			return err
		}
		if _, err := ks.InitKey(ctx, k); err != nil {
			return err
		}
	}
	return nil
}

// newKey generates a key for a use.
func newKey(use string, now time.Time, horizon time.Duration) (store.SigningKey, error) {
	k := store.SigningKey{Use: use, CreatedAt: now.UTC().Truncate(time.Microsecond), NotAfter: now.Add(horizon)}
	var pub crypto.PublicKey
	switch use {
	case useAccess:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return k, err
		}
		k.Alg, pub = "ES256", &priv.PublicKey
		if k.Private, err = x509.MarshalPKCS8PrivateKey(priv); err != nil {
			return k, err
		}
	case useID:
		priv, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			return k, err
		}
		k.Alg, pub = "RS256", &priv.PublicKey
		if k.Private, err = x509.MarshalPKCS8PrivateKey(priv); err != nil {
			return k, err
		}
	case useHMAC, usePepper:
		k.Alg, k.Private = "HS256", make([]byte, 32)
		if _, err := rand.Read(k.Private); err != nil {
			return k, err
		}
		sum := sha256.Sum256(append([]byte(use+"\x00"), k.Private...))
		k.ID = use + "-" + base64.RawURLEncoding.EncodeToString(sum[:9])
		return k, nil
	default:
		return k, fmt.Errorf("unknown key use %q", use)
	}
	// kid: the RFC 7638 thumbprint of the public key.
	tp, err := (&jose.JSONWebKey{Key: pub}).Thumbprint(crypto.SHA256)
	if err != nil {
		return k, err
	}
	k.ID = base64.RawURLEncoding.EncodeToString(tp)
	return k, nil
}

// RotateKeys makes new access-token and id_token signing keys current. The
// old keys stay published until the tokens they signed have expired;
// running servers switch to the new keys within their reload interval.
func RotateKeys(ctx context.Context, ks KeyStore, horizon time.Duration) ([]string, error) {
	var kids []string
	for _, use := range []string{useAccess, useID} {
		k, err := newKey(use, time.Now(), horizon)
		if err != nil {
			return nil, err
		}
		if err := ks.RotateKey(ctx, k); err != nil {
			return nil, err
		}
		kids = append(kids, k.ID)
	}
	return kids, nil
}

// snapshot returns the current keys, reloading them when they are older
// than the reload interval.
func (r *keyring) snapshot(ctx context.Context) (*keySnapshot, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur != nil && r.now().Sub(r.cur.loaded) < r.reload {
		return r.cur, nil
	}
	return r.load(ctx)
}

// current returns the keys without reloading (nil before the first load).
func (r *keyring) current() *keySnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur
}

// pepper returns the current pepper; the keyring is always loaded once
// New has returned.
func (r *keyring) pepper() []byte { return r.current().pepper }

// lookup finds a verification key by kid, reloading once (at most every
// few seconds) for an unknown kid: another server may have rotated.
func (r *keyring) lookup(ctx context.Context, kid string) (publicKey, error) {
	snap, err := r.snapshot(ctx)
	if err != nil {
		return publicKey{}, err
	}
	if k, ok := snap.public[kid]; ok {
		return k, nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.now().Before(r.missAfter) {
		return publicKey{}, errUnknownKey
	}
	r.missAfter = r.now().Add(2 * time.Second)
	snap, err = r.load(ctx)
	if err != nil {
		return publicKey{}, err
	}
	if k, ok := snap.public[kid]; ok {
		return k, nil
	}
	return publicKey{}, errUnknownKey
}

var errUnknownKey = errors.New("unknown signing key")

// load reads the keys (r.mu held) and pushes the NotAfter of the signing
// keys past any token this process may sign before the next reload.
func (r *keyring) load(ctx context.Context) (*keySnapshot, error) {
	now := r.now()
	rows, err := r.store.ListKeys(ctx, now)
	if err != nil {
		return nil, fmt.Errorf("loading keys: %w", err)
	}
	snap := &keySnapshot{public: map[string]publicKey{}, loaded: now}
	var published []jose.JSONWebKey
	for _, k := range rows { // newest first within a use
		current := k.RetiredAt.IsZero()
		switch k.Use {
		case useHMAC:
			if current && snap.hmac == nil {
				snap.hmac = k.Private
			}
			continue
		case usePepper:
			if current && snap.pepper == nil {
				snap.pepper = k.Private
			}
			continue
		}
		priv, err := x509.ParsePKCS8PrivateKey(k.Private)
		if err != nil {
			return nil, fmt.Errorf("key %s does not parse: %w", k.ID, err)
		}
		var pub crypto.PublicKey
		switch key := priv.(type) {
		case *ecdsa.PrivateKey:
			pub = &key.PublicKey
			if k.Use == useAccess && current && snap.access == nil {
				snap.access, snap.accessKID = key, k.ID
			}
		case *rsa.PrivateKey:
			pub = &key.PublicKey
			if k.Use == useID && current && snap.id == nil {
				snap.id, snap.idKID = key, k.ID
			}
		default:
			return nil, fmt.Errorf("key %s has an unexpected type %T", k.ID, priv)
		}
		snap.public[k.ID] = publicKey{kid: k.ID, alg: k.Alg, use: k.Use, key: pub}
		published = append(published, jose.JSONWebKey{Key: pub, KeyID: k.ID, Algorithm: k.Alg, Use: "sig"})
	}
	if snap.access == nil || snap.id == nil || snap.hmac == nil || snap.pepper == nil {
		return nil, errors.New("the key table lacks a current key; run fhirserver migrate or restart the server")
	}
	for _, kid := range []string{snap.accessKID, snap.idKID} {
		if err := r.store.ExtendKey(ctx, kid, now.Add(r.reload+r.horizon)); err != nil {
			return nil, err
		}
	}
	doc, err := json.Marshal(jose.JSONWebKeySet{Keys: published})
	if err != nil {
		return nil, err
	}
	snap.jwks = doc
	r.cur = snap
	return snap, nil
}
