// Package sharedstate keeps the short-lived state that several Vigil instances behind one
// load balancer must share (login tickets, WebAuthn ceremonies, which also carry the step-up
// re-authentication's challenge, and the sign-in throttling counts) in NATS JetStream
// key-value buckets with TTLs: the second implementation of ephemeral.TicketStore,
// ephemeral.CeremonyStore and throttle.Store beside the in-memory ones. statetest is the
// contract suite both run.
//
// Nothing readable is stored: a key is an HMAC of the ticket id, ceremony id or throttling
// key (an email, a client address) under a key derived from the server key, and a value is
// sealed with AES-GCM under another derived key, bound to its bucket and key. Every change
// is a compare-and-set on the key's revision, so concurrent instances count exactly (see
// throttle.Store).
//
// While NATS cannot be reached every operation fails at once (or after Config.OpTimeout)
// with an error wrapping ErrUnavailable: the commands then refuse the sign-in (throttling
// fails closed) and the HTTP layer answers 503. The client reconnects by itself; the buckets
// are created again when a restarted server lost them.
package sharedstate

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/vigil-auth/vigil/domain/throttle"
)

// ErrUnavailable: the shared state store cannot be reached or did not answer in time.
// Nothing was changed that the caller relies on; a sign-in must be refused (503). It is
// throttle.ErrUnavailable, so that the domain and the HTTP layer name it without importing
// this package.
var ErrUnavailable = throttle.ErrUnavailable

// Defaults of Config.
const (
	DefaultBucketPrefix = "vigil"
	// DefaultStateTTL bounds tickets and ceremonies in the buckets (their own expiry, at
	// most 10 minutes, is checked besides).
	DefaultStateTTL = 10 * time.Minute
	// DefaultThrottleTTL is throttle.Config's default ForgetAfter.
	DefaultThrottleTTL = time.Hour
	DefaultOpTimeout   = 2 * time.Second
	// DefaultLeaseTTL is how long a log follower's lease lasts without renewal (Leases).
	DefaultLeaseTTL = 10 * time.Second
	// DefaultCeremonyMaxBytes holds about 150,000 ceremonies.
	DefaultCeremonyMaxBytes = 64 << 20
)

// Config configures Open.
type Config struct {
	// URL of the NATS server(s), comma-separated (--nats-url). Required.
	URL string
	// Secret is the server key (at least 32 bytes): the names and seals of the entries are
	// derived from it, so every instance of a deployment must share it. Required.
	Secret []byte
	// BucketPrefix names the buckets <prefix>_tickets, <prefix>_ceremonies and
	// <prefix>_throttle; default DefaultBucketPrefix.
	BucketPrefix string
	// StateTTL is the bucket TTL of tickets and ceremonies; default DefaultStateTTL.
	StateTTL time.Duration
	// ThrottleTTL is the bucket TTL of the throttling counts: at least the ForgetAfter of
	// the throttling rules; default DefaultThrottleTTL.
	ThrottleTTL time.Duration
	// CeremonyMaxBytes bounds the ceremonies bucket: usernameless passkey options are given
	// without credentials, so a flood must not fill NATS; when full, options answer 429 until
	// old ceremonies expire. Default DefaultCeremonyMaxBytes.
	CeremonyMaxBytes int64
	// LeaseTTL is the bucket TTL of the followers' leases (<prefix>_leases): another instance
	// takes over a follower about LeaseTTL after its holder died. Default DefaultLeaseTTL;
	// at least 1 s.
	LeaseTTL time.Duration
	// AckTTL is the bucket TTL of the shared SSF poll acknowledgements; default
	// DefaultAckTTL.
	AckTTL time.Duration
	// Replicas of each bucket (a NATS cluster); default 1.
	Replicas int
	// OpTimeout bounds one operation (a request to JetStream); default DefaultOpTimeout.
	OpTimeout time.Duration
	// Logger receives connection changes; default slog.Default().
	Logger *slog.Logger
}

// State is a connection to NATS and the three stores on it. Safe for concurrent use.
type State struct {
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	log  *slog.Logger
	name []byte // HMAC key of entry names
	aead cipher.AEAD

	mu      sync.Mutex
	buckets map[string]jetstream.KeyValue
	closed  atomic.Bool

	// Tickets, Ceremonies and Throttle are the stores to pass to command.Config.Tickets,
	// passkey.Config.Ceremonies and throttle.Config.Store.
	Tickets    *Tickets
	Ceremonies *Ceremonies
	Throttle   *Throttle
	// Leases is the follow.Leases of the log followers that act once per deployment (the
	// mail outbox, the forwarders, the SSF push workers): buckets <prefix>_leases (TTL
	// LeaseTTL) and <prefix>_progress (no TTL).
	Leases *Leases
	// SSFAcks shares the poll acknowledgements of Shared Signals streams (<prefix>_ssf_acks).
	SSFAcks *SSFAcks
}

// Open connects to NATS (an unreachable server fails at once) and creates or updates the
// buckets. The connection then reconnects by itself for as long as the State is open.
func Open(ctx context.Context, cfg Config) (*State, error) {
	if cfg.URL == "" {
		return nil, errors.New("sharedstate: no URL")
	}
	if len(cfg.Secret) < 32 {
		return nil, errors.New("sharedstate: the secret must have at least 32 bytes")
	}
	if cfg.BucketPrefix == "" {
		cfg.BucketPrefix = DefaultBucketPrefix
	}
	if cfg.StateTTL <= 0 {
		cfg.StateTTL = DefaultStateTTL
	}
	if cfg.ThrottleTTL <= 0 {
		cfg.ThrottleTTL = DefaultThrottleTTL
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.CeremonyMaxBytes <= 0 {
		cfg.CeremonyMaxBytes = DefaultCeremonyMaxBytes
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	if cfg.AckTTL <= 0 {
		cfg.AckTTL = DefaultAckTTL
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL < time.Second {
		return nil, errors.New("sharedstate: the lease TTL must be at least 1s")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &State{cfg: cfg, log: cfg.Logger.With("component", "shared-state"), buckets: map[string]jetstream.KeyValue{}}
	s.name = derive(cfg.Secret, "vigil shared state v1: names")
	block, err := aes.NewCipher(derive(cfg.Secret, "vigil shared state v1: seal"))
	if err != nil {
		return nil, fmt.Errorf("sharedstate: %w", err)
	}
	if s.aead, err = cipher.NewGCM(block); err != nil {
		return nil, fmt.Errorf("sharedstate: %w", err)
	}
	s.nc, err = nats.Connect(cfg.URL,
		nats.Name("vigil shared state"),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.Timeout(cfg.OpTimeout),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if s.closed.Load() {
				return
			}
			s.log.Warn("NATS disconnected: sign-ins answer 503 until it is back", "error", errString(err))
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { s.log.Info("NATS reconnected", "server", c.ConnectedUrlRedacted()) }),
	)
	if err != nil {
		return nil, fmt.Errorf("cannot connect to NATS: %w", err)
	}
	if s.js, err = jetstream.New(s.nc); err != nil {
		s.nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	for _, b := range []string{s.bucketName(bucketTickets), s.bucketName(bucketCeremonies), s.bucketName(bucketThrottle),
		s.bucketName(bucketLeases), s.bucketName(bucketProgress), s.bucketName(bucketSSFAcks)} {
		octx, cancel := context.WithTimeout(ctx, 5*cfg.OpTimeout)
		_, err := s.bucket(octx, b)
		cancel()
		if err != nil {
			s.nc.Close()
			return nil, fmt.Errorf("JetStream key-value bucket %s: %w", b, err)
		}
	}
	s.Tickets = &Tickets{s: s}
	s.Ceremonies = &Ceremonies{s: s}
	s.Throttle = &Throttle{s: s}
	s.Leases = &Leases{s: s}
	s.SSFAcks = &SSFAcks{s: s}
	return s, nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// Close closes the connection.
func (s *State) Close() error {
	s.closed.Store(true)
	s.nc.Close()
	return nil
}

// Connected reports whether the connection to NATS is up.
func (s *State) Connected() bool { return s.nc.IsConnected() }

const (
	bucketTickets    = "tickets"
	bucketCeremonies = "ceremonies"
	bucketThrottle   = "throttle"
	bucketLeases     = "leases"
	bucketProgress   = "progress"
	bucketSSFAcks    = "ssf_acks"
)

func (s *State) bucketName(kind string) string { return s.cfg.BucketPrefix + "_" + kind }

// bucket returns the bucket named name, creating (or updating) it when it is not known yet.
func (s *State) bucket(ctx context.Context, name string) (jetstream.KeyValue, error) {
	s.mu.Lock()
	kv := s.buckets[name]
	s.mu.Unlock()
	if kv != nil {
		return kv, nil
	}
	ttl, maxBytes := s.cfg.StateTTL, int64(-1)
	switch name {
	case s.bucketName(bucketThrottle):
		ttl = s.cfg.ThrottleTTL
	case s.bucketName(bucketCeremonies):
		maxBytes = s.cfg.CeremonyMaxBytes
	case s.bucketName(bucketLeases):
		ttl = s.cfg.LeaseTTL
	case s.bucketName(bucketProgress):
		ttl = 0 // kept: a new holder resumes from it
	case s.bucketName(bucketSSFAcks):
		ttl = s.cfg.AckTTL
	}
	kv, err := s.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      name,
		Description: "Vigil's shared short-lived state (sharedstate)",
		History:     1,
		TTL:         ttl,
		MaxBytes:    maxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    s.cfg.Replicas,
	})
	if err != nil {
		// Another instance may have created it at the same moment with the same settings.
		if kv2, err2 := s.js.KeyValue(ctx, name); err2 == nil {
			kv, err = kv2, nil
		} else {
			return nil, err
		}
	}
	s.mu.Lock()
	s.buckets[name] = kv
	s.mu.Unlock()
	return kv, nil
}

// forget drops a bucket handle, so that the next operation creates the bucket again (a
// restarted server without its storage).
func (s *State) forget(name string) {
	s.mu.Lock()
	delete(s.buckets, name)
	s.mu.Unlock()
}

// key is the entry name of id in bucket kind: an HMAC, so that NATS holds neither a bearer
// secret (a ticket or ceremony id) nor personal data (an email in a throttling key).
func (s *State) key(kind, id string) string {
	m := hmac.New(sha256.New, s.name)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:24])
}

func (s *State) seal(kind, key string, plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return s.aead.Seal(nonce, nonce, plain, []byte(kind+"/"+key))
}

func (s *State) open(kind, key string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("sharedstate: entry too short")
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(kind+"/"+key))
	if err != nil {
		return nil, fmt.Errorf("sharedstate: an entry of %s does not open (another server key?): %w", kind, err)
	}
	return plain, nil
}

func derive(secret []byte, label string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(label))
	return m.Sum(nil)
}

// entry is one read of a key: its plaintext and revision (0: absent).
type entry struct {
	value    []byte
	revision uint64
}

// errConflict: a compare-and-set lost to another writer; the operation reads again.
var errConflict = errors.New("sharedstate: revision conflict")

// errFull: the bucket holds its MaxBytes.
var errFull = errors.New("sharedstate: bucket full")

// do runs op on bucket kind bounded by OpTimeout, failing at once with ErrUnavailable while
// disconnected, and maps the client's errors: a lost compare-and-set to errConflict, a
// missing bucket to one more try after creating it, anything else to ErrUnavailable.
func (s *State) do(ctx context.Context, kind string, op func(ctx context.Context, kv jetstream.KeyValue) error) error {
	for try := 0; ; try++ {
		if !s.nc.IsConnected() {
			return fmt.Errorf("%w: NATS is not connected (%s)", ErrUnavailable, s.nc.Status())
		}
		octx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
		name := s.bucketName(kind)
		kv, err := s.bucket(octx, name)
		if err == nil {
			err = op(octx, kv)
		}
		cancel()
		switch {
		case err == nil:
			return nil
		case isConflict(err):
			return errConflict
		case isFull(err):
			return errFull
		case try == 0 && (errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) ||
			errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders)):
			s.forget(name)
			continue
		case ctx.Err() != nil:
			return ctx.Err()
		default:
			return fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
}

func isConflict(err error) bool {
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// isFull reports a write refused because the bucket holds its MaxBytes.
func isFull(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && strings.Contains(apiErr.Description, "maximum bytes")
}

// get reads key of bucket kind (revision 0 when absent or deleted).
func (s *State) get(ctx context.Context, kind, key string) (entry, error) {
	var e entry
	err := s.do(ctx, kind, func(ctx context.Context, kv jetstream.KeyValue) error {
		en, err := kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
			return nil
		}
		if err != nil {
			return err
		}
		plain, err := s.open(kind, key, en.Value())
		if err != nil {
			return err
		}
		e = entry{value: plain, revision: en.Revision()}
		return nil
	})
	return e, err
}

// put writes key of bucket kind when its revision is still rev (0: when absent), else
// errConflict.
func (s *State) put(ctx context.Context, kind, key string, plain []byte, rev uint64) error {
	v := s.seal(kind, key, plain)
	return s.do(ctx, kind, func(ctx context.Context, kv jetstream.KeyValue) error {
		var err error
		if rev == 0 {
			_, err = kv.Create(ctx, key, v)
		} else {
			_, err = kv.Update(ctx, key, v, rev)
		}
		return err
	})
}

// remove purges key of bucket kind when its revision is still rev (0: whatever it is),
// else errConflict.
func (s *State) remove(ctx context.Context, kind, key string, rev uint64) error {
	return s.do(ctx, kind, func(ctx context.Context, kv jetstream.KeyValue) error {
		if rev == 0 {
			return kv.Purge(ctx, key)
		}
		return kv.Purge(ctx, key, jetstream.LastRevision(rev))
	})
}

// casRetries bounds the compare-and-set loops; only a storm of writers on one key reaches it.
const casRetries = 1000

// ServerURL is the URL of the server connected to, without credentials (for logs).
func (s *State) ServerURL() string { return s.nc.ConnectedUrlRedacted() }
