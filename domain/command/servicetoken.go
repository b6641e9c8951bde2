package command

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/domain/validate"
)

// Service token scopes (API.md "Administration").
const (
	// ScopeEventsRead grants GET /api/v1/events and the SSE stream.
	ScopeEventsRead = "events:read"
	// ScopeAuditRead grants the GET routes of the security teams (/api/v1/audit/...).
	ScopeAuditRead = "audit:read"
)

// ServiceTokenScopes lists every scope a token may hold, sorted.
var ServiceTokenScopes = []string{ScopeAuditRead, ScopeEventsRead, ScopeSSFManage}

// ServiceTokenPrefix starts every service token, so that it is recognisable (secret
// scanners, the Authorization header) and never confused with a session token.
const ServiceTokenPrefix = "vgl_"

// DefaultDeniedInterval is how often at most a ServiceTokenUseDenied is recorded per token
// (per instance); denials in between are counted in the next event's Suppressed.
const DefaultDeniedInterval = time.Minute

// Errors of the service token commands.
var (
	// ErrServiceTokenInvalid: the presented service token is unknown, malformed or revoked.
	ErrServiceTokenInvalid = errors.New("service token unknown or revoked")
	// ErrInsufficientScope: the service token is valid but lacks the scope the route needs.
	ErrInsufficientScope = errors.New("service token lacks the required scope")
)

// HashServiceToken returns the SHA-256 of a service token.
func HashServiceToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }

// tokenStreamPrefix prefixes the streams of service tokens.
var tokenStreamPrefix = domain.ServiceTokenStream("")

// ServiceToken is a service token as the index knows it (never its secret).
type ServiceToken struct {
	ID        string
	Name      string
	Scopes    []string
	CreatedAt time.Time
	// CreatedBy is the id of the admin who created it ("" when unknown).
	CreatedBy string
	Revoked   bool
	RevokedAt time.Time
}

// hasScope reports whether the token holds scope.
func (t ServiceToken) hasScope(scope string) bool { return slices.Contains(t.Scopes, scope) }

func (t ServiceToken) clone() ServiceToken {
	t.Scopes = slices.Clone(t.Scopes)
	return t
}

// ServiceTokenIndex is the in-memory index of service tokens that authenticates machine
// requests without reading the log: token hash -> token, id -> token. It is safe for
// concurrent use. Like SessionIndex it has two feeds: the ServiceTokens commands of this
// instance (synchronously, so a revocation holds before the revoking call returns) and Apply,
// fed with the log for tokens created or revoked on other instances. Each entry remembers the
// stream version it reflects, so a repeated or late envelope changes nothing. Keyed by
// SHA-256, a lookup's timing reveals nothing about the tokens that exist (see SessionIndex).
type ServiceTokenIndex struct {
	mu     sync.RWMutex
	byHash map[[32]byte]*tokenRecord
	byID   map[string]*tokenRecord
}

type tokenRecord struct {
	tok     ServiceToken
	hash    [32]byte
	version uint64
}

// NewServiceTokenIndex returns an empty index.
func NewServiceTokenIndex() *ServiceTokenIndex {
	return &ServiceTokenIndex{byHash: map[[32]byte]*tokenRecord{}, byID: map[string]*tokenRecord{}}
}

// Apply folds one stored event into the index. Events of other streams are ignored (nil
// error); an undecodable service token event is an error and changes nothing.
func (x *ServiceTokenIndex) Apply(env domain.Envelope) error {
	if !strings.HasPrefix(env.StreamID, tokenStreamPrefix) {
		return nil
	}
	switch env.Type {
	case domain.EventServiceTokenCreated, domain.EventServiceTokenRevoked, domain.EventServiceTokenUseDenied:
	default:
		return nil
	}
	ev, err := domain.DecodeEvent(env)
	if err != nil {
		return err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.applyLocked(env.StreamID, env.Version, ev, env.Metadata)
}

func (x *ServiceTokenIndex) applyLocked(stream string, version uint64, ev domain.Event, md domain.Metadata) error {
	id := strings.TrimPrefix(stream, tokenStreamPrefix)
	r := x.byID[id]
	if r != nil && version <= r.version {
		return nil // already seen
	}
	switch e := ev.(type) {
	case domain.ServiceTokenCreated:
		if r != nil {
			return nil
		}
		raw, err := hex.DecodeString(e.TokenHash)
		if err != nil || len(raw) != sha256.Size {
			return fmt.Errorf("service token %s: bad token hash", id)
		}
		r = &tokenRecord{tok: ServiceToken{ID: id, Name: e.Name, Scopes: slices.Clone(e.Scopes), CreatedAt: e.At, CreatedBy: md.Actor.ID}, version: version}
		copy(r.hash[:], raw)
		x.byID[id] = r
		x.byHash[r.hash] = r
	case domain.ServiceTokenRevoked:
		if r == nil {
			return fmt.Errorf("service token %s: revoked before created", id)
		}
		r.tok.Revoked, r.tok.RevokedAt, r.version = true, e.At, version
	case domain.ServiceTokenUseDenied:
		if r != nil {
			r.version = version
		}
	}
	return nil
}

// Lookup returns the token whose SHA-256 is hash, revoked or not.
func (x *ServiceTokenIndex) Lookup(hash [32]byte) (ServiceToken, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r := x.byHash[hash]
	if r == nil || subtle.ConstantTimeCompare(r.hash[:], hash[:]) != 1 {
		return ServiceToken{}, false
	}
	return r.tok.clone(), true
}

// Get returns the token with this id, revoked or not.
func (x *ServiceTokenIndex) Get(id string) (ServiceToken, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	r := x.byID[id]
	if r == nil {
		return ServiceToken{}, false
	}
	return r.tok.clone(), true
}

// List returns every token, revoked ones included, oldest first (ties by id).
func (x *ServiceTokenIndex) List() []ServiceToken {
	x.mu.RLock()
	out := make([]ServiceToken, 0, len(x.byID))
	for _, r := range x.byID {
		out = append(out, r.tok.clone())
	}
	x.mu.RUnlock()
	slices.SortFunc(out, func(a, b ServiceToken) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// ServiceTokensConfig configures NewServiceTokens. Store is required.
type ServiceTokensConfig struct {
	// Store is the event log. Required.
	Store domain.EventStore
	// Index is the in-memory token index; default a new one. Feed it the log with Apply so
	// tokens of other instances authenticate here too.
	Index *ServiceTokenIndex
	// DeniedInterval: at most one ServiceTokenUseDenied per token and reason per interval;
	// default DefaultDeniedInterval.
	DeniedInterval time.Duration
	// MaxRetries bounds the reload-decide-append attempts of Revoke; default 10.
	MaxRetries int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Rand supplies the tokens; default crypto/rand.Reader. It must be safe for
	// concurrent use.
	Rand io.Reader
}

// ServiceTokens runs the service token commands: create, revoke, list and authenticate.
// It is safe for concurrent use.
type ServiceTokens struct {
	cfg   ServiceTokensConfig
	index *ServiceTokenIndex

	mu     sync.Mutex
	denied map[string]*denyState // token id + reason -> rate limit of ServiceTokenUseDenied
}

type denyState struct {
	last       time.Time
	suppressed int
}

// NewServiceTokens validates cfg, fills defaults and returns the command handler.
func NewServiceTokens(cfg ServiceTokensConfig) (*ServiceTokens, error) {
	if cfg.Store == nil {
		return nil, errors.New("domain: ServiceTokensConfig.Store is required")
	}
	if cfg.Index == nil {
		cfg.Index = NewServiceTokenIndex()
	}
	if cfg.DeniedInterval == 0 {
		cfg.DeniedInterval = DefaultDeniedInterval
	}
	if cfg.DeniedInterval < 0 {
		return nil, errors.New("domain: ServiceTokensConfig.DeniedInterval is negative")
	}
	if cfg.MaxRetries == 0 {
		cfg.MaxRetries = 10
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	return &ServiceTokens{cfg: cfg, index: cfg.Index, denied: map[string]*denyState{}}, nil
}

// Index returns the token index (to feed it the log).
func (s *ServiceTokens) Index() *ServiceTokenIndex { return s.index }

func (s *ServiceTokens) now() time.Time { return s.cfg.Now().UTC() }

// MaxServiceTokenName bounds a token's name, in characters.
const MaxServiceTokenName = 100

// cleanScopes validates scopes: at least one, each a known scope; duplicates collapse.
func cleanScopes(scopes []string) ([]string, error) {
	if len(scopes) == 0 {
		return nil, validate.Invalid("scopes", "must name at least one scope (%s)", strings.Join(ServiceTokenScopes, ", "))
	}
	out := make([]string, 0, len(scopes))
	for _, sc := range scopes {
		if !slices.Contains(ServiceTokenScopes, sc) {
			return nil, validate.Invalid("scopes", "each scope must be one of %s", strings.Join(ServiceTokenScopes, ", "))
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	slices.Sort(out)
	return out, nil
}

func tokenMetadata(def domain.Actor, rm RequestMeta) domain.Metadata {
	actor := def
	if rm.Actor != nil {
		actor = *rm.Actor
	}
	return domain.Metadata{Actor: actor, IP: rm.IP, UserAgent: rm.UserAgent, ClientID: rm.ClientID,
		CorrelationID: rm.CorrelationID, CausationID: rm.CausationID}
}

// Create makes a token named name (1..100 characters) with scopes (ServiceTokenScopes) and
// returns it, its secret (shown once: only its SHA-256 is stored) and the position written.
// rm.Actor names the admin. The token authenticates on this instance when Create returns.
func (s *ServiceTokens) Create(ctx context.Context, name string, scopes []string, rm RequestMeta) (ServiceToken, string, uint64, error) {
	n, nerr := validate.Text("name", name, MaxServiceTokenName, true)
	sc, serr := cleanScopes(scopes)
	if err := errors.Join(nerr, serr); err != nil {
		return ServiceToken{}, "", 0, err
	}
	var raw [32]byte
	if _, err := io.ReadFull(s.cfg.Rand, raw[:]); err != nil {
		return ServiceToken{}, "", 0, fmt.Errorf("service token: random: %w", err)
	}
	secret := ServiceTokenPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	hash := HashServiceToken(secret)
	id := domain.NewID()
	ev := domain.ServiceTokenCreated{TokenID: id, Name: n, Scopes: sc, TokenHash: hex.EncodeToString(hash[:]), At: s.now()}
	md := tokenMetadata(domain.Actor{Type: domain.ActorSystem}, rm)
	data, err := domain.EncodeEvent(ev, md)
	if err != nil {
		return ServiceToken{}, "", 0, err
	}
	res, err := s.cfg.Store.Append(ctx, domain.ServiceTokenStream(id), expect.NoStream, []domain.EventData{data})
	if err != nil {
		return ServiceToken{}, "", 0, fmt.Errorf("append service token: %w", err)
	}
	s.index.mu.Lock()
	_ = s.index.applyLocked(domain.ServiceTokenStream(id), res.NextVersion, ev, md)
	s.index.mu.Unlock()
	tok, _ := s.index.Get(id)
	return tok, secret, res.LastPosition, nil
}

// Revoke revokes the token with this id. It holds on this instance before Revoke returns;
// other instances follow the log. An unknown id is ErrNotFound; revoking a revoked token
// writes nothing (position 0).
func (s *ServiceTokens) Revoke(ctx context.Context, id string, rm RequestMeta) (uint64, error) {
	if id == "" || len(id) > 64 {
		return 0, fmt.Errorf("service token: %w", domain.ErrNotFound)
	}
	stream := domain.ServiceTokenStream(id)
	md := tokenMetadata(domain.Actor{Type: domain.ActorSystem}, rm)
	for range s.cfg.MaxRetries {
		envs, err := s.cfg.Store.ReadStream(ctx, stream, 1, 0)
		if err != nil {
			return 0, fmt.Errorf("load service token: %w", err)
		}
		if len(envs) == 0 {
			return 0, fmt.Errorf("service token: %w", domain.ErrNotFound)
		}
		revoked := false
		for _, e := range envs {
			if err := s.index.Apply(e); err != nil {
				return 0, err
			}
			revoked = revoked || e.Type == domain.EventServiceTokenRevoked
		}
		if revoked {
			return 0, nil
		}
		ev := domain.ServiceTokenRevoked{TokenID: id, At: s.now()}
		data, err := domain.EncodeEvent(ev, md)
		if err != nil {
			return 0, err
		}
		version := envs[len(envs)-1].Version
		res, err := s.cfg.Store.Append(ctx, stream, expect.Exact(version), []domain.EventData{data})
		if errors.Is(err, expect.ErrWrongVersion) {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("append service token revocation: %w", err)
		}
		s.index.mu.Lock()
		_ = s.index.applyLocked(stream, res.NextVersion, ev, md)
		s.index.mu.Unlock()
		return res.LastPosition, nil
	}
	return 0, fmt.Errorf("revoke service token: %w", expect.ErrWrongVersion)
}

// List returns every token (revoked ones too), oldest first.
func (s *ServiceTokens) List() []ServiceToken { return s.index.List() }

// Authenticate checks a presented token for scope. A malformed or unknown token is
// ErrServiceTokenInvalid and records nothing (it names no token). A revoked token is
// ErrServiceTokenInvalid and a token without scope ErrInsufficientScope; both record a
// ServiceTokenUseDenied (rate-limited per token, see DeniedInterval; a failed append is
// joined to the error, which still matches the denial). The returned token is valid only
// without error.
func (s *ServiceTokens) Authenticate(ctx context.Context, token, scope string, rm RequestMeta) (ServiceToken, error) {
	if !strings.HasPrefix(token, ServiceTokenPrefix) || len(token) > 128 {
		return ServiceToken{}, ErrServiceTokenInvalid
	}
	tok, ok := s.index.Lookup(HashServiceToken(token))
	if !ok {
		return ServiceToken{}, ErrServiceTokenInvalid
	}
	switch {
	case tok.Revoked:
		return ServiceToken{}, s.deny(ctx, tok, domain.DeniedRevoked, "", rm, ErrServiceTokenInvalid)
	case !tok.hasScope(scope):
		return ServiceToken{}, s.deny(ctx, tok, domain.DeniedInsufficientScope, scope, rm, ErrInsufficientScope)
	}
	return tok, nil
}

// deny records a ServiceTokenUseDenied unless one was recorded for tok within
// DeniedInterval, and returns kind (joined with an append failure).
func (s *ServiceTokens) deny(ctx context.Context, tok ServiceToken, reason, scope string, rm RequestMeta, kind error) error {
	now := s.now()
	s.mu.Lock()
	key := tok.ID + " " + reason
	st := s.denied[key]
	if st == nil {
		st = &denyState{}
		s.denied[key] = st
	}
	if !st.last.IsZero() && now.Sub(st.last) < s.cfg.DeniedInterval {
		st.suppressed++
		s.mu.Unlock()
		return kind
	}
	suppressed := st.suppressed
	st.last, st.suppressed = now, 0
	s.mu.Unlock()
	md := tokenMetadata(domain.Actor{Type: domain.ActorService, ID: tok.ID}, rm)
	data, err := domain.EncodeEvent(domain.ServiceTokenUseDenied{TokenID: tok.ID, Reason: reason, Scope: scope, Suppressed: suppressed, At: now}, md)
	if err == nil {
		_, err = s.cfg.Store.Append(ctx, domain.ServiceTokenStream(tok.ID), expect.Any, []domain.EventData{data})
	}
	if err != nil {
		return errors.Join(kind, fmt.Errorf("recording the denied use: %w", err))
	}
	return kind
}
