package command_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
)

// TestWhoamiCatchesUpOnAMiss: two services on one log, as two instances. A session started
// on the first is unknown to the second until its feed brings it; with Config.CatchUp the
// second waits for that feed before refusing the token, so it is found at once.
func TestWhoamiCatchesUpOnAMiss(t *testing.T) {
	first := newHarness(t)
	first.register("ann@example.com")
	var applied uint64
	var catchUps int
	other := func(withCatchUp bool) *command.Service {
		cfg := first.cfg
		cfg.Sessions = nil
		cfg.Orgs = nil
		cfg.TwoFactorPolicy = nil
		var svc *command.Service
		if withCatchUp {
			cfg.CatchUp = func(ctx context.Context) error { // the log feed, reading up to the head
				catchUps++
				evs, err := first.store.ReadAll(ctx, applied, 1000)
				for _, e := range evs {
					if err := svc.Apply(e); err != nil {
						return err
					}
					applied = e.Position
				}
				return err
			}
		}
		var err error
		if svc, err = command.NewService(cfg); err != nil {
			t.Fatal(err)
		}
		return svc
	}
	without, with := other(false), other(true)
	tok := first.login("ann@example.com").Token
	if _, err := without.Whoami(first.ctx, tok); !errors.Is(err, domain.ErrSessionNotFound) {
		t.Fatalf("without catch-up: %v, want the session unknown until the feed brings it", err)
	}
	sess, err := with.Whoami(first.ctx, tok)
	if err != nil || sess.AccountID == "" || catchUps != 1 {
		t.Fatalf("with catch-up: %+v %v (%d catch-ups)", sess, err, catchUps)
	}
	// A known token does not wait; an unknown one still fails after one catch-up.
	if _, err := with.Whoami(first.ctx, tok); err != nil || catchUps != 1 {
		t.Fatalf("known token: %v, %d catch-ups", err, catchUps)
	}
	if _, err := with.Whoami(first.ctx, "no-such-token"); !errors.Is(err, domain.ErrSessionNotFound) || catchUps != 2 {
		t.Fatalf("unknown token: %v, %d catch-ups", err, catchUps)
	}
}

// TestStepUpCatchesUpOnAMiss: a re-authentication on one instance counts at once for a
// sensitive change on another sharing the log, through the same catch-up.
func TestStepUpCatchesUpOnAMiss(t *testing.T) {
	first := newHarness(t)
	first.register("ann@example.com")
	var applied uint64
	cfg := first.cfg
	var other *command.Service
	cfg.CatchUp = func(ctx context.Context) error {
		evs, err := first.store.ReadAll(ctx, applied, 1000)
		for _, e := range evs {
			if err := other.Apply(e); err != nil {
				return err
			}
			applied = e.Position
		}
		return err
	}
	var err error
	if other, err = command.NewService(cfg); err != nil {
		t.Fatal(err)
	}
	auth := first.login("ann@example.com")
	sess, err := other.Whoami(first.ctx, auth.Token) // caught up: the session is known
	if err != nil {
		t.Fatal(err)
	}
	first.clock.Advance(10 * time.Minute) // beyond the step-up window
	if _, err := other.Authorize(sess, domain.CapControl, true); !errors.Is(err, command.ErrReauthenticationRequired) {
		t.Fatalf("before the re-authentication: %v", err)
	}
	cur, err := first.svc.Whoami(first.ctx, auth.Token)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.svc.Reauth(first.ctx, cur, command.ReauthInput{Password: goodPassword}, command.RequestMeta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Authorize(sess, domain.CapControl, true); err != nil {
		t.Fatalf("a re-authentication on the first instance, a sensitive change at once on the other: %v", err)
	}
}
