package main

import (
	"strconv"
	"strings"

	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/forward"
)

// Settings of the forwarders (issue 6), beyond API.md's table.
const (
	optForwardNATSURL           = "forward-nats-url"
	optForwardNATSSubjectPrefix = "forward-nats-subject-prefix"
	optForwardNATSStream        = "forward-nats-stream"
	optWebhookURL               = "webhook-url"
	optWebhookSecretFile        = "webhook-secret-file"
	optWebhookAttempts          = "webhook-attempts"
	optWebhookTimeout           = "webhook-timeout"
)

var forwardOptions = []option{
	{flag: optForwardNATSURL, env: "VIGIL_FORWARD_NATS_URL", meta: "URL", defHelp: "none", help: "forward every event to NATS JetStream at this server (an unreachable one stops start-up)"},
	{flag: optForwardNATSSubjectPrefix, env: "VIGIL_FORWARD_NATS_SUBJECT_PREFIX", def: forward.DefaultNATSSubjectPrefix, meta: "SUBJECT", help: "events are published on <prefix>.<type>"},
	{flag: optForwardNATSStream, env: "VIGIL_FORWARD_NATS_STREAM", def: forward.DefaultNATSStream, meta: "NAME", help: "the JetStream stream capturing <prefix>.>; created when missing"},
	{flag: optWebhookURL, env: "VIGIL_WEBHOOK_URL", meta: "URL", defHelp: "none", help: "POST every event, signed per Standard Webhooks, to this endpoint (more via /api/v1/admin/webhooks)"},
	{flag: optWebhookSecretFile, env: "VIGIL_WEBHOOK_SECRET_FILE", meta: "FILE", defHelp: "<data-dir>/webhook.secret, made on first start", help: "the whsec_ secret webhooks are signed with"},
	{flag: optWebhookAttempts, env: "VIGIL_WEBHOOK_ATTEMPTS", def: strconv.Itoa(forward.DefaultWebhookAttempts), meta: "N", help: "attempts of a webhook delivery (exponential back-off from 1s, at most 1m) before it is parked (1 to 100)"},
	{flag: optWebhookTimeout, env: "VIGIL_WEBHOOK_TIMEOUT", def: forward.DefaultWebhookTimeout.String(), meta: "DURATION", help: "bound of one webhook delivery attempt"},
}

func init() { serveOptions = append(serveOptions, forwardOptions...) }

// validateForward checks the forwarder settings.
func validateForward(s map[string]setting) (app.ForwardConfig, error) {
	var fc app.ForwardConfig
	fc.NATSURL = strings.TrimSpace(s[optForwardNATSURL].value)
	p := s[optForwardNATSSubjectPrefix]
	if p.value == "" || strings.ContainsAny(p.value, " \t\r\n*>") || strings.HasPrefix(p.value, ".") ||
		strings.HasSuffix(p.value, ".") || strings.Contains(p.value, "..") {
		return fc, p.errorf("%q is not a NATS subject without wildcards", p.value)
	}
	fc.NATSSubjectPrefix = p.value
	st := s[optForwardNATSStream]
	if st.value == "" || strings.ContainsAny(st.value, " \t\r\n*>./\\") {
		return fc, st.errorf("%q is not a JetStream stream name", st.value)
	}
	fc.NATSStream = st.value
	if w := s[optWebhookURL]; w.value != "" {
		u, err := domain.ValidateWebhookURL(w.value)
		if err != nil {
			return fc, w.errorf("%v", err)
		}
		fc.WebhookURL = u
	}
	if sf := s[optWebhookSecretFile]; sf.value != "" {
		if _, err := forward.ReadSecretFile(sf.value); err != nil {
			return fc, sf.errorf("%v", err)
		}
		fc.WebhookSecretFile = sf.value
	}
	a := s[optWebhookAttempts]
	n, err := strconv.Atoi(a.value)
	if err != nil || n < 1 || n > 100 {
		return fc, a.errorf("%q must be a number from 1 to 100", a.value)
	}
	fc.WebhookAttempts = n
	if fc.WebhookTimeout, err = parseDuration(s[optWebhookTimeout]); err != nil {
		return fc, err
	}
	return fc, nil
}
