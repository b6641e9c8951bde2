package command_test

import (
	"errors"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
)

func ptr[T any](v T) *T { return &v }

// TestSSFStreamCommands: a stream's changes are SSFStreamChanged events holding the whole
// configuration; bad input changes nothing;
// a deleted stream is not found.
func TestSSFStreamCommands(t *testing.T) {
	h := newHarness(t)
	push := "urn:ietf:rfc:8935"
	for _, in := range []command.SSFStreamInput{
		{},
		{DeliveryMethod: ptr("urn:x")},
		{DeliveryMethod: &push},
		{DeliveryMethod: &push, EndpointURL: ptr("https://u:p@rp.example.com/")},
		{DeliveryMethod: ptr("urn:ietf:rfc:8936"), EventsRequested: ptr([]string{""})},
		{DeliveryMethod: ptr("urn:ietf:rfc:8936"), Description: ptr("a\nb")},
	} {
		if _, _, err := h.svc.CreateSSFStream(h.ctx, in, command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidInput) {
			t.Errorf("create %+v: %v", in, err)
		}
	}
	if head, _ := h.store.Head(h.ctx); head != 0 {
		t.Fatalf("refused input wrote %d events", head)
	}
	cfg, _, err := h.svc.CreateSSFStream(h.ctx, command.SSFStreamInput{DeliveryMethod: &push, EndpointURL: ptr("https://rp.example.com/ssf"),
		EventsRequested: ptr([]string{"https://schemas.openid.net/secevent/caep/event-type/session-revoked"})}, command.RequestMeta{})
	if err != nil || cfg.Audience != cfg.StreamID || cfg.Status != "enabled" || cfg.Change != "created" {
		t.Fatalf("create: %+v %v", cfg, err)
	}
	if _, _, err := h.svc.SetSSFStreamStatus(h.ctx, cfg.StreamID, "asleep", "", command.RequestMeta{}); !errors.Is(err, domain.ErrInvalidInput) {
		t.Fatalf("bad status: %v", err)
	}
	got, _, err := h.svc.SetSSFStreamStatus(h.ctx, cfg.StreamID, "paused", "", command.RequestMeta{})
	if err != nil || got.Status != "paused" || got.EndpointURL != "https://rp.example.com/ssf" || len(got.EventsRequested) != 1 {
		t.Fatalf("pause keeps the rest: %+v %v", got, err)
	}
	// A verification carries its state and keeps the rest.
	if _, err := h.svc.VerifySSFStream(h.ctx, cfg.StreamID, "s1", command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	read, _, _ := h.svc.SSFStream(h.ctx, cfg.StreamID)
	if read.State != "s1" || read.Status != "paused" {
		t.Fatalf("after verification: %+v", read)
	}
	if _, err := h.svc.DeleteSSFStream(h.ctx, cfg.StreamID, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := h.svc.SSFStream(h.ctx, cfg.StreamID); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("deleted stream: %v", err)
	}
	if _, err := h.svc.DeleteSSFStream(h.ctx, cfg.StreamID, command.RequestMeta{}); !errors.Is(err, domain.ErrNotFound) {
		t.Fatalf("deleting twice: %v", err)
	}
}
