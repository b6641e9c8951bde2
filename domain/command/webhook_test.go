package command_test

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
)

// TestWebhookRegistrationAndRemoval: the secret returned once is the one sealed in the
// event (bound to the endpoint's id), the URL is checked, and removal happens once.
func TestWebhookRegistrationAndRemoval(t *testing.T) {
	h := newHarness(t)
	admin := command.RequestMeta{Actor: &domain.Actor{Type: domain.ActorAdmin, ID: "a1"}}
	for _, bad := range []string{"", "ftp://x.example", "https://u:p@x.example/", "https://x.example/#f", "/relative", "https://" + strings.Repeat("x", 2050)} {
		if _, _, err := h.svc.RegisterWebhook(h.ctx, bad, admin); !errors.Is(err, domain.ErrInvalidInput) {
			t.Errorf("url %.40q: %v", bad, err)
		}
	}
	w, pos, err := h.svc.RegisterWebhook(h.ctx, " https://siem.example.com/in ", admin)
	if err != nil || pos == 0 || w.URL != "https://siem.example.com/in" {
		t.Fatalf("register: %+v %d %v", w, pos, err)
	}
	evs, err := h.store.ReadStream(h.ctx, domain.WebhookStream(w.ID), 1, 10)
	if err != nil || len(evs) != 1 || evs[0].Metadata.Actor.Type != domain.ActorAdmin {
		t.Fatalf("stream %+v %v", evs, err)
	}
	if strings.Contains(string(evs[0].Data), strings.TrimPrefix(w.Secret, "whsec_")) {
		t.Fatal("the secret is in the log in clear")
	}
	e, err := domain.DecodeEvent(evs[0])
	if err != nil {
		t.Fatal(err)
	}
	reg := e.(domain.WebhookRegistered)
	key, err := command.OpenWebhookSecret(h.cfg.Keyring, reg)
	if err != nil || "whsec_"+base64.StdEncoding.EncodeToString(key) != w.Secret {
		t.Fatalf("opened secret does not match: %v", err)
	}
	reg.WebhookID = "another"
	if _, err := command.OpenWebhookSecret(h.cfg.Keyring, reg); err == nil {
		t.Fatal("a secret sealed for one endpoint opened for another")
	}
	if _, err := h.svc.RemoveWebhook(h.ctx, w.ID, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.RemoveWebhook(h.ctx, w.ID, admin); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("second removal: %v", err)
	}
	if _, err := h.svc.RemoveWebhook(h.ctx, "never", admin); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("unknown removal: %v", err)
	}
}
