package forward

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/validate"
)

// Defaults of WebhookConfig.
const (
	DefaultWebhookAttempts       = 6
	DefaultWebhookInitialBackoff = time.Second
	DefaultWebhookMaxBackoff     = time.Minute
	DefaultWebhookTimeout        = 10 * time.Second
)

// Sources of webhook endpoints.
const (
	SourceConfig = "config" // --webhook-url
	SourceAPI    = "api"    // the admin API
)

// WebhookConfig configures the webhook forwarders. Every endpoint gets every event of the
// log, in order: the configured one (URL) from the start of the log, those registered through
// the admin API from their registration on.
type WebhookConfig struct {
	// URL is the configured endpoint (--webhook-url); empty means none.
	URL string
	// Secret is the HMAC key (the decoded "whsec_" secret) the configured endpoint's
	// deliveries are signed with; endpoints registered through the admin API have their own
	// (Config.OpenSecret). Required with URL.
	Secret []byte
	// Attempts is how many times a delivery is tried before it is parked; default
	// DefaultWebhookAttempts.
	Attempts int
	// InitialBackoff is the wait after the first failed attempt; it doubles after each
	// further one, up to MaxBackoff. Defaults DefaultWebhookInitialBackoff and
	// DefaultWebhookMaxBackoff.
	InitialBackoff, MaxBackoff time.Duration
	// Timeout bounds one attempt (connecting, sending, the answer's headers and up to 64 KiB
	// of its body); default DefaultWebhookTimeout.
	Timeout time.Duration
	// Transport, when set, carries the requests (tests); default a clone of
	// http.DefaultTransport.
	Transport http.RoundTripper
}

func (c *WebhookConfig) fill() error {
	if c.URL != "" && len(c.Secret) == 0 {
		return errors.New("forward: WebhookConfig.Secret is required with URL")
	}
	if c.Attempts <= 0 {
		c.Attempts = DefaultWebhookAttempts
	}
	if c.InitialBackoff <= 0 {
		c.InitialBackoff = DefaultWebhookInitialBackoff
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = DefaultWebhookMaxBackoff
	}
	if c.Timeout <= 0 {
		c.Timeout = DefaultWebhookTimeout
	}
	if c.URL != "" {
		u, err := validate.WebhookURL(c.URL)
		if err != nil {
			return fmt.Errorf("forward: webhook URL: %w", err)
		}
		c.URL = u
	}
	return nil
}

func (c *WebhookConfig) client() *http.Client {
	tr := c.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	return &http.Client{
		Transport: tr,
		Timeout:   c.Timeout,
		// A redirect is an answer that is not 2xx: it counts as a failed attempt.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// backoff returns the wait after failed attempt n (1-based).
func (c *WebhookConfig) backoff(n int) time.Duration {
	d := c.InitialBackoff
	for i := 1; i < n && d < c.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, c.MaxBackoff)
}

// endpoint is one webhook destination with its forwarder.
type endpoint struct {
	row    endpointRow
	source string
	key    []byte // the HMAC key its deliveries are signed with
	name   string // its forwarder's
	// removed is set when the endpoint's own WebhookRemoved reaches its forwarder (which
	// may happen before the registry stops it): nothing from there on is delivered.
	removed atomic.Bool
}

// endpointKey returns the signing key of an endpoint: the configured secret for the
// configured endpoint, else its own sealed secret, opened.
func (f *Forwarders) endpointKey(r endpointRow, source string) ([]byte, error) {
	if source == SourceConfig || f.cfg.OpenSecret == nil {
		return f.cfg.Webhooks.Secret, nil
	}
	var sealed credential.SealedSecret
	if err := json.Unmarshal([]byte(r.Sealed), &sealed); err != nil {
		return nil, fmt.Errorf("forward: sealed secret of webhook %s: %w", r.ID, err)
	}
	return f.cfg.OpenSecret(domain.WebhookRegistered{WebhookID: r.ID, URL: r.URL, Secret: sealed, At: r.CreatedAt})
}

// startEndpoint adds the forwarder of an endpoint (once). An endpoint whose secret cannot be
// opened (its server key is no longer in the keyring) is logged and left stopped: it would
// only fail, and it must not hold up the registry.
func (f *Forwarders) startEndpoint(r endpointRow, source string) error {
	key, err := f.endpointKey(r, source)
	if err != nil {
		f.log.Error("webhook endpoint left stopped: its signing secret cannot be opened", "endpoint", r.ID, "error", err.Error())
		return nil
	}
	f.mu.Lock()
	if _, ok := f.endpoints[r.ID]; ok {
		f.mu.Unlock()
		return nil
	}
	e := &endpoint{row: r, source: source, key: key, name: endpointName(r.ID)}
	f.endpoints[r.ID] = e
	f.mu.Unlock()
	return f.add(e.name, func(ctx context.Context, ev domain.Envelope) (bool, error) { return f.deliverWebhook(ctx, e, ev) })
}

// stopEndpoint stops an endpoint's forwarder and waits (bounded) until it has stopped.
func (f *Forwarders) stopEndpoint(id string) {
	f.mu.Lock()
	e, ok := f.endpoints[id]
	delete(f.endpoints, id)
	f.mu.Unlock()
	if ok {
		f.f.Remove(e.name)
	}
}

// applyRegistry keeps the endpoint table: it starts the forwarder of a registered endpoint
// and stops that of a removed one. Other events only move its checkpoint, which is saved at
// most once a second (replaying a few of them after a restart changes nothing).
func (f *Forwarders) applyRegistry(ctx context.Context, ev domain.Envelope) (bool, error) {
	switch ev.Type {
	case domain.EventWebhookRegistered, domain.EventWebhookRemoved:
	default:
		if time.Since(f.regSaved) < time.Second {
			return true, nil
		}
		f.regSaved = time.Now()
		return false, nil
	}
	e, err := domain.DecodeEvent(ev)
	if err != nil {
		return false, err
	}
	f.regSaved = time.Now()
	switch e := e.(type) {
	case domain.WebhookRegistered:
		sealed, err := json.Marshal(e.Secret)
		if err != nil {
			return false, err
		}
		row := endpointRow{ID: e.WebhookID, URL: e.URL, CreatedAt: e.At, Position: ev.Position, Sealed: string(sealed)}
		if err := f.cfg.DB.addEndpoint(ctx, row, RegistryName); err != nil {
			return false, err
		}
		f.log.Info("webhook endpoint registered", "endpoint", e.WebhookID, "url", e.URL)
		return true, f.startEndpoint(row, SourceAPI)
	case domain.WebhookRemoved:
		f.stopEndpoint(e.WebhookID)
		if err := f.cfg.DB.removeEndpoint(ctx, e.WebhookID, ev.Position, RegistryName); err != nil {
			return false, err
		}
		f.log.Info("webhook endpoint removed", "endpoint", e.WebhookID)
		return true, nil
	}
	return false, nil
}

// deliverWebhook sends one event to an endpoint, retrying with exponential back-off; after
// the last attempt it parks the delivery (saving the checkpoint with it) and moves on.
func (f *Forwarders) deliverWebhook(ctx context.Context, e *endpoint, ev domain.Envelope) (bool, error) {
	if ev.Type == domain.EventWebhookRemoved && ev.StreamID == domain.WebhookStream(e.row.ID) {
		e.removed.Store(true)
	}
	if e.removed.Load() {
		return true, nil // the registry is stopping this endpoint
	}
	body, err := f.cfg.Encode(ev)
	if err != nil {
		return false, fmt.Errorf("forward: encode event %s: %w", ev.ID, err)
	}
	wc := &f.cfg.Webhooks
	for attempt := 1; ; attempt++ {
		err := f.post(ctx, e, ev.ID, body)
		if err == nil {
			return false, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		f.metrics.attemptFailures.WithLabelValues(e.name).Inc()
		if attempt >= wc.Attempts {
			p := ParkedDelivery{EventID: ev.ID, Position: ev.Position, Type: ev.Type, Attempts: attempt,
				LastError: err.Error(), ParkedAt: f.cfg.Now().UTC(), body: body}
			if err := f.cfg.DB.park(context.WithoutCancel(ctx), e.row.ID, p); err != nil {
				return false, err
			}
			f.metrics.parked.WithLabelValues(e.name).Inc()
			f.log.Warn("webhook delivery parked after its last attempt", "endpoint", e.row.ID,
				"event_id", ev.ID, "position", ev.Position, "attempts", attempt, "error", err.Error())
			return true, nil
		}
		wait := wc.backoff(attempt)
		f.log.Info("webhook delivery failed; retrying", "endpoint", e.row.ID, "position", ev.Position,
			"attempt", attempt, "retry_in", wait.String(), "error", err.Error())
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return false, ctx.Err()
		}
	}
}

// errStatus is an answer that is not 2xx.
type errStatus int

func (e errStatus) Error() string { return "the endpoint answered HTTP " + strconv.Itoa(int(e)) }

// post makes one signed delivery attempt: nil only for a 2xx answer. A shutdown does not
// cut an attempt in flight (the timeout bounds it): an event the endpoint accepted is then
// checkpointed, and not sent again after the restart.
func (f *Forwarders) post(ctx context.Context, e *endpoint, id string, body []byte) error {
	ts := f.cfg.Now().Unix()
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodPost, e.row.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Vigil-Webhooks/1")
	req.Header.Set(HeaderID, id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(e.key, id, ts, body))
	resp, err := f.client.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errStatus(resp.StatusCode)
	}
	return nil
}

// Endpoint describes a webhook endpoint for administrators.
type Endpoint struct {
	ID        string
	URL       string
	Source    string    // SourceConfig or SourceAPI
	CreatedAt time.Time // zero for the configured endpoint
	// Position is the last global position delivered (or parked).
	Position uint64
	// Parked counts the deliveries waiting for a replay.
	Parked int
}

// Endpoints lists the running endpoints, the configured one first, then by registration.
func (f *Forwarders) Endpoints(ctx context.Context) ([]Endpoint, error) {
	counts, err := f.cfg.DB.parkedCounts(ctx)
	if err != nil {
		return nil, err
	}
	positions := f.Positions()
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Endpoint, 0, len(f.endpoints))
	for _, e := range f.endpoints {
		out = append(out, Endpoint{ID: e.row.ID, URL: e.row.URL, Source: e.source, CreatedAt: e.row.CreatedAt,
			Position: positions[e.name], Parked: counts[e.row.ID]})
	}
	sortEndpoints(out)
	return out, nil
}

func sortEndpoints(es []Endpoint) {
	less := func(a, b Endpoint) bool {
		if (a.Source == SourceConfig) != (b.Source == SourceConfig) {
			return a.Source == SourceConfig
		}
		if !a.CreatedAt.Equal(b.CreatedAt) {
			return a.CreatedAt.Before(b.CreatedAt)
		}
		return a.ID < b.ID
	}
	for i := 1; i < len(es); i++ {
		for j := i; j > 0 && less(es[j], es[j-1]); j-- {
			es[j], es[j-1] = es[j-1], es[j]
		}
	}
}

func (f *Forwarders) endpoint(id string) (*endpoint, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.endpoints[id]
	if !ok {
		return nil, fmt.Errorf("webhook endpoint %q: %w", id, domain.ErrNotFound)
	}
	return e, nil
}

// Parked lists an endpoint's parked deliveries with an id above after, oldest first, at
// most limit. An unknown endpoint gives domain.ErrNotFound.
func (f *Forwarders) Parked(ctx context.Context, endpointID string, after int64, limit int) ([]ParkedDelivery, error) {
	if _, err := f.endpoint(endpointID); err != nil {
		return nil, err
	}
	return f.cfg.DB.parked(ctx, endpointID, after, limit)
}

// ReplayResult is the outcome of replaying a parked delivery.
type ReplayResult struct {
	Delivered bool
	// Attempts counts every attempt of this delivery, the replay included.
	Attempts int
	// LastError says why the replay failed; empty when delivered.
	LastError string
}

// Replay makes one new, freshly signed attempt of a parked delivery, with the body it was
// parked with. Delivered, it is no longer parked; refused, it stays parked with the attempt
// counted. The endpoint meanwhile delivers later events: a replayed event arrives after
// them. An unknown endpoint or delivery gives domain.ErrNotFound.
func (f *Forwarders) Replay(ctx context.Context, endpointID string, deliveryID int64) (ReplayResult, error) {
	e, err := f.endpoint(endpointID)
	if err != nil {
		return ReplayResult{}, err
	}
	p, err := f.cfg.DB.parkedOne(ctx, endpointID, deliveryID)
	if err != nil {
		return ReplayResult{}, err
	}
	if perr := f.post(ctx, e, p.EventID, p.body); perr != nil {
		if ctx.Err() != nil {
			return ReplayResult{}, ctx.Err()
		}
		f.metrics.attemptFailures.WithLabelValues(e.name).Inc()
		if err := f.cfg.DB.replayFailed(ctx, p.ID, perr.Error()); err != nil {
			return ReplayResult{}, err
		}
		return ReplayResult{Attempts: p.Attempts + 1, LastError: perr.Error()}, nil
	}
	if err := f.cfg.DB.unpark(ctx, p.ID); err != nil {
		return ReplayResult{}, err
	}
	f.metrics.delivered.WithLabelValues(e.name).Inc()
	f.log.Info("parked webhook delivery replayed", "endpoint", endpointID, "event_id", p.EventID, "position", p.Position)
	return ReplayResult{Delivered: true, Attempts: p.Attempts + 1}, nil
}
