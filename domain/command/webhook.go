package command

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/domain/validate"
)

// Webhook is a registered webhook endpoint.
type Webhook struct {
	ID        string
	URL       string
	CreatedAt time.Time
	// Secret is the endpoint's Standard Webhooks signing secret, "whsec_" + base64 of 32
	// random bytes. RegisterWebhook returns it once; the log holds it only sealed.
	Secret string
}

// webhookSecretPrefix starts a Standard Webhooks secret.
const webhookSecretPrefix = "whsec_"

// webhookAAD binds a sealed webhook secret to its endpoint.
func webhookAAD(webhookID string) []byte { return []byte("webhook-secret:" + webhookID) }

// OpenWebhookSecret returns the HMAC key of a registered endpoint (the bytes behind its
// "whsec_" secret), opening the sealed secret of its WebhookRegistered with the keyring.
func OpenWebhookSecret(k *credential.Keyring, e domain.WebhookRegistered) ([]byte, error) {
	key, err := k.Open(e.Secret, webhookAAD(e.WebhookID))
	if err != nil {
		return nil, fmt.Errorf("webhook %s secret: %w", e.WebhookID, err)
	}
	return key, nil
}

// RegisterWebhook registers a webhook endpoint (WebhookRegistered on system-webhook-<id>)
// with a new signing secret of its own, and returns it (with the secret in clear, for the
// caller to show once) and the global position written. rm.Actor names the administrator.
// The URL is checked with validate.WebhookURL.
func (s *Service) RegisterWebhook(ctx context.Context, rawURL string, rm RequestMeta) (Webhook, uint64, error) {
	u, err := validate.WebhookURL(rawURL)
	if err != nil {
		return Webhook{}, 0, err
	}
	w := Webhook{ID: domain.NewID(), URL: u, CreatedAt: s.now().UTC()}
	key := make([]byte, 32)
	if _, err := io.ReadFull(s.cfg.Rand, key); err != nil {
		return Webhook{}, 0, fmt.Errorf("webhook secret: %w", err)
	}
	sealed, err := s.cfg.Keyring.Seal(key, webhookAAD(w.ID))
	if err != nil {
		return Webhook{}, 0, err
	}
	w.Secret = webhookSecretPrefix + base64.StdEncoding.EncodeToString(key)
	res, err := s.appendEvents(ctx, domain.WebhookStream(w.ID), expect.NoStream,
		[]domain.Event{domain.WebhookRegistered{WebhookID: w.ID, URL: w.URL, Secret: sealed, At: w.CreatedAt}},
		s.metadata("", domain.Actor{Type: domain.ActorSystem}, rm))
	if err != nil {
		return Webhook{}, 0, err
	}
	return w, res.LastPosition, nil
}

// RemoveWebhook removes a registered endpoint (WebhookRemoved) and returns the position
// written. An id that was never registered, or was already removed, gives ErrNotFound. The
// append expects the version it read; a concurrent removal makes one of them fail with an
// error wrapping ErrWrongExpectedVersion.
func (s *Service) RemoveWebhook(ctx context.Context, webhookID string, rm RequestMeta) (uint64, error) {
	if webhookID == "" || len(webhookID) > 64 {
		return 0, fmt.Errorf("webhook %q: %w", webhookID, domain.ErrNotFound)
	}
	events, err := s.cfg.Store.ReadStream(ctx, domain.WebhookStream(webhookID), 1, 100)
	if err != nil {
		return 0, fmt.Errorf("load webhook: %w", err)
	}
	if len(events) == 0 || events[len(events)-1].Type == domain.EventWebhookRemoved {
		return 0, fmt.Errorf("webhook %s: %w", webhookID, domain.ErrNotFound)
	}
	last := events[len(events)-1]
	res, err := s.appendEvents(ctx, domain.WebhookStream(webhookID), expect.Exact(last.Version),
		[]domain.Event{domain.WebhookRemoved{WebhookID: webhookID, At: s.now().UTC()}},
		s.metadata("", domain.Actor{Type: domain.ActorSystem}, rm))
	if err != nil {
		return 0, err
	}
	return res.LastPosition, nil
}
