package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/eventstore/forward"
)

func TestForwardSettings(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(secret, []byte(forward.NewSecret()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := parseServe([]string{"--forward-nats-url", "nats://127.0.0.1:4222", "--webhook-secret-file", secret,
		"--webhook-attempts", "3"}, envMap("VIGIL_WEBHOOK_URL", "https://siem.example.com/in", "VIGIL_FORWARD_NATS_SUBJECT_PREFIX", "acme.audit"))
	if err != nil {
		t.Fatal(err)
	}
	f := c.Forward
	if f.NATSURL != "nats://127.0.0.1:4222" || f.NATSSubjectPrefix != "acme.audit" || f.NATSStream != "VIGIL_EVENTS" ||
		f.WebhookURL != "https://siem.example.com/in" || f.WebhookSecretFile != secret || f.WebhookAttempts != 3 ||
		f.WebhookTimeout != 10*time.Second {
		t.Fatalf("forward config %+v", f)
	}
	if c.appConfig(nil).Forward != f {
		t.Fatal("the forward settings do not reach the app")
	}

	bad := filepath.Join(dir, "bad.secret")
	os.WriteFile(bad, []byte("not a secret"), 0o600)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"--webhook-url", "ftp://x/y"}, `--webhook-url: invalid input: url: must be an http or https URL`},
		{[]string{"--webhook-url", "https://user:pw@x.example/y"}, `--webhook-url: invalid input: url: must not carry credentials`},
		{[]string{"--webhook-secret-file", bad}, `--webhook-secret-file: ` + bad + `: forward: the webhook secret is not whsec_`},
		{[]string{"--webhook-secret-file", filepath.Join(dir, "none")}, `--webhook-secret-file: open `},
		{[]string{"--webhook-attempts", "0"}, `--webhook-attempts: "0" must be a number from 1 to 100`},
		{[]string{"--webhook-timeout", "0s"}, `--webhook-timeout: "0s" must be positive`},
		{[]string{"--forward-nats-subject-prefix", "vigil.*"}, `--forward-nats-subject-prefix: "vigil.*" is not a NATS subject without wildcards`},
		{[]string{"--forward-nats-stream", "a.b"}, `--forward-nats-stream: "a.b" is not a JetStream stream name`},
	}
	for _, tt := range tests {
		_, err := parseServe(tt.args, envMap())
		if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want %s", tt.args, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw@") {
			t.Errorf("%v: the message repeats credentials: %v", tt.args, err)
		}
	}
}
