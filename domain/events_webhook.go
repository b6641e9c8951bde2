package domain

import (
	"time"

	"github.com/vigil-auth/vigil/domain/credential"
)

// Webhook events: an administrator registers and removes the endpoints that Vigil's webhook
// forwarder delivers every event to. Each endpoint has its own stream,
// system-webhook-<id> (under the system- prefix, so every backend already follows it).

// Webhook event type names.
const (
	EventWebhookRegistered = "WebhookRegistered"
	EventWebhookRemoved    = "WebhookRemoved"
)

// WebhookRegistered opens an endpoint's stream: from this event's position on, every later
// event of the log is delivered to URL, signed with the endpoint's own Standard Webhooks
// secret, sealed here with the server key (see OpenWebhookSecret).
type WebhookRegistered struct {
	WebhookID string                  `json:"webhook_id"`
	URL       string                  `json:"url"`
	Secret    credential.SealedSecret `json:"secret"`
	At        time.Time               `json:"at"`
}

// WebhookRemoved ends an endpoint: nothing more is delivered to it and its parked
// deliveries are dropped.
type WebhookRemoved struct {
	WebhookID string    `json:"webhook_id"`
	At        time.Time `json:"at"`
}

// eventType implements Event: "WebhookRegistered".
func (WebhookRegistered) eventType() string { return EventWebhookRegistered }

// eventType implements Event: "WebhookRemoved".
func (WebhookRemoved) eventType() string { return EventWebhookRemoved }

// webhookStreamPrefix starts the stream id of every webhook endpoint.
const webhookStreamPrefix = StreamPrefixSystem + "webhook-"

// WebhookStream returns the stream id of a webhook endpoint: "system-webhook-<id>".
func WebhookStream(webhookID string) string { return webhookStreamPrefix + webhookID }
