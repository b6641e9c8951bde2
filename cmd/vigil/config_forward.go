package main

import (
	"strconv"
	"strings"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	input "github.com/vigil-auth/vigil/domain/validate"
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

var forwardOptions = []cli.Option{
	{Flag: optForwardNATSURL, Env: "VIGIL_FORWARD_NATS_URL", Meta: "URL", DefHelp: "none", Help: "forward every event to NATS JetStream at this server (an unreachable one stops start-up)"},
	{Flag: optForwardNATSSubjectPrefix, Env: "VIGIL_FORWARD_NATS_SUBJECT_PREFIX", Def: forward.DefaultNATSSubjectPrefix, Meta: "SUBJECT", Help: "events are published on <prefix>.<type>"},
	{Flag: optForwardNATSStream, Env: "VIGIL_FORWARD_NATS_STREAM", Def: forward.DefaultNATSStream, Meta: "NAME", Help: "the JetStream stream capturing <prefix>.>; created when missing"},
	{Flag: optWebhookURL, Env: "VIGIL_WEBHOOK_URL", Meta: "URL", DefHelp: "none", Help: "POST every event, signed per Standard Webhooks, to this endpoint (more via /api/v1/admin/webhooks)"},
	{Flag: optWebhookSecretFile, Env: "VIGIL_WEBHOOK_SECRET_FILE", Meta: "FILE", DefHelp: "<data-dir>/webhook.secret, made on first start", Help: "the whsec_ secret webhooks are signed with"},
	{Flag: optWebhookAttempts, Env: "VIGIL_WEBHOOK_ATTEMPTS", Def: strconv.Itoa(forward.DefaultWebhookAttempts), Meta: "N", Help: "attempts of a webhook delivery (exponential back-off from 1s, at most 1m) before it is parked (1 to 100)"},
	{Flag: optWebhookTimeout, Env: "VIGIL_WEBHOOK_TIMEOUT", Def: forward.DefaultWebhookTimeout.String(), Meta: "DURATION", Help: "bound of one webhook delivery attempt"},
}

func init() { serveOptions = append(serveOptions, forwardOptions...) }

// validateForward checks the forwarder settings.
func validateForward(s cli.Settings) (app.ForwardConfig, error) {
	var fc app.ForwardConfig
	fc.NATSURL = strings.TrimSpace(s[optForwardNATSURL].Value)
	p := s[optForwardNATSSubjectPrefix]
	if p.Value == "" || strings.ContainsAny(p.Value, " \t\r\n*>") || strings.HasPrefix(p.Value, ".") ||
		strings.HasSuffix(p.Value, ".") || strings.Contains(p.Value, "..") {
		return fc, p.Errorf("%q is not a NATS subject without wildcards", p.Value)
	}
	fc.NATSSubjectPrefix = p.Value
	st := s[optForwardNATSStream]
	if st.Value == "" || strings.ContainsAny(st.Value, " \t\r\n*>./\\") {
		return fc, st.Errorf("%q is not a JetStream stream name", st.Value)
	}
	fc.NATSStream = st.Value
	if w := s[optWebhookURL]; w.Value != "" {
		u, err := input.WebhookURL(w.Value)
		if err != nil {
			return fc, w.Errorf("%v", err)
		}
		fc.WebhookURL = u
	}
	if sf := s[optWebhookSecretFile]; sf.Value != "" {
		if _, err := forward.ReadSecretFile(sf.Value); err != nil {
			return fc, sf.Errorf("%v", err)
		}
		fc.WebhookSecretFile = sf.Value
	}
	a := s[optWebhookAttempts]
	n, err := strconv.Atoi(a.Value)
	if err != nil || n < 1 || n > 100 {
		return fc, a.Errorf("%q must be a number from 1 to 100", a.Value)
	}
	fc.WebhookAttempts = n
	if fc.WebhookTimeout, err = parseDuration(s[optWebhookTimeout]); err != nil {
		return fc, err
	}
	return fc, nil
}
