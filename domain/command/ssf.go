package command

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/domain/validate"
)

// Shared Signals streams (API.md "Shared Signals"): each change appends one SSFStreamChanged
// holding the whole configuration after it, with the expected version of the stream it read.

// ScopeSSFManage grants the Shared Signals stream management and polling.
const ScopeSSFManage = "ssf:manage"

// SSF delivery methods and statuses, as SSF 1.0 names them.
const (
	ssfPush     = "urn:ietf:rfc:8935"
	ssfPoll     = "urn:ietf:rfc:8936"
	ssfEnabled  = "enabled"
	ssfPaused   = "paused"
	ssfDisabled = "disabled"
)

// Bounds of a stream's configuration.
const (
	maxSSFEvents      = 32
	maxSSFEventURI    = 256
	maxSSFDescription = 500
	maxSSFAudience    = 256
	maxSSFState       = 1024
	maxSSFReason      = 500
)

// SSFStreamInput is a stream's configuration as a receiver gives it; on update, nil
// members keep their value.
type SSFStreamInput struct {
	DeliveryMethod  *string
	EndpointURL     *string
	EventsRequested *[]string
	Description     *string
	Audience        *string
}

// checkSSFText refuses a text over max bytes or with control characters.
func checkSSFText(field, v string, max int) error {
	if len(v) > max {
		return validate.Invalid(field, "is longer than %d bytes", max)
	}
	if !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return validate.Invalid(field, "holds control characters")
	}
	return nil
}

// applySSFInput applies in to cfg and checks the result.
func applySSFInput(cfg *domain.SSFStreamChanged, in SSFStreamInput) error {
	if in.DeliveryMethod != nil {
		cfg.DeliveryMethod = *in.DeliveryMethod
	}
	if in.EndpointURL != nil {
		cfg.EndpointURL = *in.EndpointURL
	}
	if in.EventsRequested != nil {
		cfg.EventsRequested = append([]string{}, (*in.EventsRequested)...)
	}
	if in.Description != nil {
		cfg.Description = *in.Description
	}
	if in.Audience != nil {
		cfg.Audience = *in.Audience
	}
	switch cfg.DeliveryMethod {
	case ssfPush:
		u, err := validate.WebhookURL(cfg.EndpointURL)
		if err != nil {
			if ve, ok := err.(*domain.ValidationError); ok {
				return validate.Invalid("delivery.endpoint_url", "%s", ve.Reason)
			}
			return err
		}
		cfg.EndpointURL = u
	case ssfPoll:
		if in.EndpointURL != nil && *in.EndpointURL != "" && in.DeliveryMethod != nil {
			return validate.Invalid("delivery.endpoint_url", "is set by the transmitter for poll delivery")
		}
		cfg.EndpointURL = ""
	case "":
		return validate.Invalid("delivery.method", "is required")
	default:
		return validate.Invalid("delivery.method", "must be %s (push) or %s (poll)", ssfPush, ssfPoll)
	}
	if len(cfg.EventsRequested) > maxSSFEvents {
		return validate.Invalid("events_requested", "holds more than %d event types", maxSSFEvents)
	}
	for _, e := range cfg.EventsRequested {
		if e == "" {
			return validate.Invalid("events_requested", "holds an empty event type")
		}
		if err := checkSSFText("events_requested", e, maxSSFEventURI); err != nil {
			return err
		}
	}
	if err := checkSSFText("description", cfg.Description, maxSSFDescription); err != nil {
		return err
	}
	return checkSSFText("aud", cfg.Audience, maxSSFAudience)
}

// CreateSSFStream creates a stream (SSFStreamChanged "created", status enabled) and returns
// it with the position written. aud defaults to the stream id.
func (s *Service) CreateSSFStream(ctx context.Context, in SSFStreamInput, rm RequestMeta) (domain.SSFStreamChanged, uint64, error) {
	id := domain.NewID()
	cfg := domain.SSFStreamChanged{StreamID: id, Change: "created", Status: ssfEnabled, EventsRequested: []string{}}
	if in.DeliveryMethod == nil {
		return cfg, 0, validate.Invalid("delivery.method", "is required")
	}
	if err := applySSFInput(&cfg, in); err != nil {
		return cfg, 0, err
	}
	if cfg.Audience == "" {
		cfg.Audience = id
	}
	cfg.At = s.now().UTC()
	res, err := s.appendEvents(ctx, domain.SSFStream(id), expect.NoStream, []domain.Event{cfg}, s.metadata("", domain.Actor{Type: domain.ActorSystem}, rm))
	if err != nil {
		return cfg, 0, err
	}
	return cfg, res.LastPosition, nil
}

// SSFStream returns a stream as its last SSFStreamChanged left it and that event's version;
// ErrNotFound for an unknown or deleted stream.
func (s *Service) SSFStream(ctx context.Context, streamID string) (domain.SSFStreamChanged, uint64, error) {
	notFound := fmt.Errorf("ssf stream %q: %w", streamID, domain.ErrNotFound)
	if streamID == "" || len(streamID) > 64 {
		return domain.SSFStreamChanged{}, 0, notFound
	}
	var last domain.Envelope
	for from := uint64(1); ; {
		evs, err := s.cfg.Store.ReadStream(ctx, domain.SSFStream(streamID), from, 500)
		if err != nil {
			return domain.SSFStreamChanged{}, 0, fmt.Errorf("load ssf stream: %w", err)
		}
		if len(evs) > 0 {
			last = evs[len(evs)-1]
		}
		if len(evs) < 500 {
			break
		}
		from = last.Version + 1
	}
	if last.Version == 0 {
		return domain.SSFStreamChanged{}, 0, notFound
	}
	e, err := domain.DecodeEvent(last)
	if err != nil {
		return domain.SSFStreamChanged{}, 0, err
	}
	cfg, ok := e.(domain.SSFStreamChanged)
	if !ok || cfg.Change == "deleted" {
		return domain.SSFStreamChanged{}, 0, notFound
	}
	return cfg, last.Version, nil
}

// changeSSFStream appends the stream's configuration after change, expecting the version
// it read (a concurrent change makes one of them fail with ErrWrongExpectedVersion).
func (s *Service) changeSSFStream(ctx context.Context, streamID, change string, rm RequestMeta, apply func(*domain.SSFStreamChanged) error) (domain.SSFStreamChanged, uint64, error) {
	cfg, version, err := s.SSFStream(ctx, streamID)
	if err != nil {
		return cfg, 0, err
	}
	if err := apply(&cfg); err != nil {
		return cfg, 0, err
	}
	cfg.Change, cfg.At = change, s.now().UTC()
	if change != "verification" {
		cfg.State = ""
	}
	if cfg.Status != ssfDisabled {
		cfg.Reason = ""
	}
	res, err := s.appendEvents(ctx, domain.SSFStream(streamID), expect.Exact(version), []domain.Event{cfg}, s.metadata("", domain.Actor{Type: domain.ActorSystem}, rm))
	if errors.Is(err, expect.ErrWrongVersion) {
		return cfg, 0, fmt.Errorf("ssf stream %s changed meanwhile: %w", streamID, errors.Join(domain.ErrConflict, err))
	}
	if err != nil {
		return cfg, 0, err
	}
	return cfg, res.LastPosition, nil
}

// UpdateSSFStream changes a stream's delivery, events requested, description or audience.
func (s *Service) UpdateSSFStream(ctx context.Context, streamID string, in SSFStreamInput, rm RequestMeta) (domain.SSFStreamChanged, uint64, error) {
	return s.changeSSFStream(ctx, streamID, "updated", rm, func(cfg *domain.SSFStreamChanged) error {
		if err := applySSFInput(cfg, in); err != nil {
			return err
		}
		if cfg.Audience == "" {
			cfg.Audience = streamID
		}
		return nil
	})
}

// SetSSFStreamStatus sets a stream's status: enabled, paused (events are kept) or disabled
// (events are dropped), with an optional reason.
func (s *Service) SetSSFStreamStatus(ctx context.Context, streamID, status, reason string, rm RequestMeta) (domain.SSFStreamChanged, uint64, error) {
	switch status {
	case ssfEnabled, ssfPaused, ssfDisabled:
	case "":
		return domain.SSFStreamChanged{}, 0, validate.Invalid("status", "is required")
	default:
		return domain.SSFStreamChanged{}, 0, validate.Invalid("status", "must be enabled, paused or disabled")
	}
	if err := checkSSFText("reason", reason, maxSSFReason); err != nil {
		return domain.SSFStreamChanged{}, 0, err
	}
	return s.changeSSFStream(ctx, streamID, "status", rm, func(cfg *domain.SSFStreamChanged) error {
		cfg.Status, cfg.Reason = status, reason
		return nil
	})
}

// VerifySSFStream asks for a verification SET carrying state.
func (s *Service) VerifySSFStream(ctx context.Context, streamID, state string, rm RequestMeta) (uint64, error) {
	if err := checkSSFText("state", state, maxSSFState); err != nil {
		return 0, err
	}
	_, pos, err := s.changeSSFStream(ctx, streamID, "verification", rm, func(cfg *domain.SSFStreamChanged) error {
		cfg.State = state
		return nil
	})
	return pos, err
}

// DeleteSSFStream deletes a stream: nothing more is made or delivered for it.
func (s *Service) DeleteSSFStream(ctx context.Context, streamID string, rm RequestMeta) (uint64, error) {
	_, pos, err := s.changeSSFStream(ctx, streamID, "deleted", rm, func(*domain.SSFStreamChanged) error { return nil })
	return pos, err
}
