// Package ssf serves the Shared Signals transmitter's HTTP face (API.md "Shared Signals"):
// the transmitter metadata at /.well-known/ssf-configuration, the JWK set, stream
// management, status, verification and the poll endpoint (RFC 8936). The streams are events
// on the log (domain/command's SSF commands); delivery is eventstore/forward/ssf's.
package ssf

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/go-jose/go-jose/v4"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
	"github.com/vigil-auth/vigil/handlers/web"
)

// Paths, relative to /api/v1, and the metadata path.
const (
	WellKnownPath     = "/.well-known/ssf-configuration"
	JWKSPath          = "/ssf/jwks"
	StreamsPath       = "/ssf/streams"
	StatusPath        = "/ssf/status"
	VerificationPath  = "/ssf/verify"
	PollPathPrefix    = "/ssf/poll/"
	maxPollEvents     = 500
	registryWait      = 2 * time.Second
	defaultPollEvents = 100
)

// Transmitter is what the routes need from the transmitter (*ssf.Transmitter satisfies it).
type Transmitter interface {
	WaitRegistry(ctx context.Context, position uint64) error
	Poll(ctx context.Context, streamID string, maxEvents int, returnImmediately bool, ack []string) (ssf.PollResult, error)
}

// Commands are the stream commands (*command.Service satisfies it).
type Commands interface {
	CreateSSFStream(ctx context.Context, in command.SSFStreamInput, rm command.RequestMeta) (domain.SSFStreamChanged, uint64, error)
	SSFStream(ctx context.Context, streamID string) (domain.SSFStreamChanged, uint64, error)
	UpdateSSFStream(ctx context.Context, streamID string, in command.SSFStreamInput, rm command.RequestMeta) (domain.SSFStreamChanged, uint64, error)
	SetSSFStreamStatus(ctx context.Context, streamID, status, reason string, rm command.RequestMeta) (domain.SSFStreamChanged, uint64, error)
	VerifySSFStream(ctx context.Context, streamID, state string, rm command.RequestMeta) (uint64, error)
	DeleteSSFStream(ctx context.Context, streamID string, rm command.RequestMeta) (uint64, error)
}

// StreamLister lists the streams this instance runs (for GET without stream_id).
type StreamLister interface {
	Streams(ctx context.Context) ([]ssf.StreamInfo, error)
}

// Config configures New.
type Config struct {
	Transmitter interface {
		Transmitter
		StreamLister
	}
	Commands Commands
	// Keys give the JWK set.
	Keys *ssf.Keys
	// Issuer is the public URL (iss, and the base of every endpoint in the metadata).
	Issuer string
	Now    func() time.Time
}

// SSF is the Shared Signals routes.
type SSF struct {
	core *web.Core
	cfg  Config
}

// New returns the routes on k.
func New(k *web.Core, cfg Config) *SSF {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Issuer = strings.TrimRight(cfg.Issuer, "/")
	return &SSF{core: k, cfg: cfg}
}

func (s *SSF) url(rel string) string { return s.cfg.Issuer + web.ApiPrefix + rel }

// deliveryJSON is a stream's delivery.
type deliveryJSON struct {
	Method      string `json:"method"`
	EndpointURL string `json:"endpoint_url,omitempty"`
}

// streamJSON is a stream as SSF 1.0 shows it.
type streamJSON struct {
	StreamID        string       `json:"stream_id"`
	Iss             string       `json:"iss"`
	Aud             string       `json:"aud"`
	Delivery        deliveryJSON `json:"delivery"`
	EventsSupported []string     `json:"events_supported"`
	EventsRequested []string     `json:"events_requested"`
	EventsDelivered []string     `json:"events_delivered"`
	Description     string       `json:"description,omitempty"`
}

func (s *SSF) streamOf(cfg domain.SSFStreamChanged) streamJSON {
	d := deliveryJSON{Method: cfg.DeliveryMethod, EndpointURL: cfg.EndpointURL}
	if d.Method == ssf.MethodPoll {
		d.EndpointURL = s.url(PollPathPrefix + cfg.StreamID)
	}
	req := cfg.EventsRequested
	if req == nil {
		req = []string{}
	}
	return streamJSON{StreamID: cfg.StreamID, Iss: s.cfg.Issuer, Aud: cfg.Audience, Delivery: d,
		EventsSupported: ssf.EventsSupported, EventsRequested: req, EventsDelivered: ssf.Delivered(req), Description: cfg.Description}
}

type statusJSON struct {
	StreamID string `json:"stream_id"`
	Status   string `json:"status"`
	Reason   string `json:"reason,omitempty"`
}

// streamInput is the body of a stream's creation or update.
type streamInput struct {
	StreamID        string        `json:"stream_id,omitempty"`
	Delivery        *deliveryJSON `json:"delivery"`
	EventsRequested *[]string     `json:"events_requested"`
	Description     *string       `json:"description"`
	Aud             *string       `json:"aud"`
	// SSF 1.0 lets receivers send back what the transmitter answered: read-only members are
	// accepted and ignored.
	Iss             *string   `json:"iss"`
	EventsSupported *[]string `json:"events_supported"`
	EventsDelivered *[]string `json:"events_delivered"`
}

func (in streamInput) command() command.SSFStreamInput {
	out := command.SSFStreamInput{EventsRequested: in.EventsRequested, Description: in.Description, Audience: in.Aud}
	if in.Delivery != nil {
		out.DeliveryMethod = &in.Delivery.Method
		if in.Delivery.EndpointURL != "" || in.Delivery.Method == ssf.MethodPush {
			out.EndpointURL = &in.Delivery.EndpointURL
		}
	}
	return out
}

type statusInput struct {
	StreamID string `json:"stream_id"`
	Status   string `json:"status"`
	Reason   string `json:"reason"`
}

type verifyInput struct {
	StreamID string `json:"stream_id"`
	State    string `json:"state"`
}

// pollInput is RFC 8936's poll request (its member names are camelCase by the RFC).
type pollInput struct {
	MaxEvents         *int                      `json:"maxEvents"`
	ReturnImmediately bool                      `json:"returnImmediately"`
	Ack               []string                  `json:"ack"`
	SetErrs           map[string]map[string]any `json:"setErrs"`
	web.OptionalBody
}

type pollJSON struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable"`
}

// actor names who changed a stream: the service token, or the administrator.
func actor(c *gin.Context, rm command.RequestMeta) command.RequestMeta {
	if t, ok := web.ServiceCaller(c); ok {
		rm.Actor = &domain.Actor{Type: domain.ActorService, ID: t.ID}
	} else {
		rm.Actor = &domain.Actor{Type: domain.ActorAdmin, ID: web.CallerOf(c).AccountID}
	}
	return rm
}

// streamIDParam reads ?stream_id=.
func streamIDParam(c *gin.Context, required bool) (string, error) {
	id, ok := c.GetQuery("stream_id")
	if !ok && !required {
		return "", nil
	}
	if id == "" {
		return "", &domain.ValidationError{Field: "stream_id", Reason: "is required"}
	}
	return id, nil
}

func (s *SSF) waitRegistry(c *gin.Context, pos uint64) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), registryWait)
	defer cancel()
	if err := s.cfg.Transmitter.WaitRegistry(ctx, pos); err != nil {
		web.LoggerFrom(c).WarnContext(c.Request.Context(), "the ssf transmitter did not apply a stream change in time", "position", pos)
	}
}

func (s *SSF) configuration(r *web.Call[web.NoBody]) (web.Reply, error) {
	return web.JSON(http.StatusOK, map[string]any{
		"spec_version":               "1_0",
		"issuer":                     s.cfg.Issuer,
		"jwks_uri":                   s.url(JWKSPath),
		"delivery_methods_supported": []string{ssf.MethodPush, ssf.MethodPoll},
		"configuration_endpoint":     s.url(StreamsPath),
		"status_endpoint":            s.url(StatusPath),
		"verification_endpoint":      s.url(VerificationPath),
		"default_subjects":           "ALL",
		"authorization_schemes":      []map[string]string{{"spec_urn": "urn:ietf:rfc:6750"}},
	}, 0), nil
}

func (s *SSF) jwks(r *web.Call[web.NoBody]) (web.Reply, error) {
	set := s.cfg.Keys.JWKS(s.cfg.Now())
	return web.JSON(http.StatusOK, jose.JSONWebKeySet(set), 0), nil
}

func (s *SSF) create(r *web.Call[streamInput]) (web.Reply, error) {
	if r.In.StreamID != "" {
		return web.Reply{}, &domain.ValidationError{Field: "stream_id", Reason: "is chosen by the transmitter"}
	}
	if r.In.Delivery == nil {
		return web.Reply{}, &domain.ValidationError{Field: "delivery", Reason: "is required"}
	}
	cfg, pos, err := s.cfg.Commands.CreateSSFStream(r.Ctx, r.In.command(), actor(r.C, r.Meta))
	if err != nil {
		return web.Reply{}, err
	}
	s.waitRegistry(r.C, pos)
	return web.JSON(http.StatusCreated, s.streamOf(cfg), pos), nil
}

func (s *SSF) read(r *web.Call[web.NoBody]) (web.Reply, error) {
	id, err := streamIDParam(r.C, false)
	if err != nil {
		return web.Reply{}, err
	}
	if id != "" {
		cfg, _, err := s.cfg.Commands.SSFStream(r.Ctx, id)
		if err != nil {
			return web.Reply{}, err
		}
		return web.JSON(http.StatusOK, s.streamOf(cfg), 0), nil
	}
	list, err := s.cfg.Transmitter.Streams(r.Ctx)
	if err != nil {
		return web.Reply{}, err
	}
	out := make([]streamJSON, 0, len(list))
	for _, st := range list {
		out = append(out, s.streamOf(st.Config))
	}
	return web.JSON(http.StatusOK, out, 0), nil
}

func (s *SSF) update(r *web.Call[streamInput]) (web.Reply, error) {
	if r.In.StreamID == "" {
		return web.Reply{}, &domain.ValidationError{Field: "stream_id", Reason: "is required"}
	}
	if d := r.In.Delivery; d != nil && d.Method == ssf.MethodPoll && d.EndpointURL == s.url(PollPathPrefix+r.In.StreamID) {
		d.EndpointURL = "" // a receiver sending back what it was given
	}
	cfg, pos, err := s.cfg.Commands.UpdateSSFStream(r.Ctx, r.In.StreamID, r.In.command(), actor(r.C, r.Meta))
	if err != nil {
		return web.Reply{}, err
	}
	s.waitRegistry(r.C, pos)
	return web.JSON(http.StatusOK, s.streamOf(cfg), pos), nil
}

func (s *SSF) remove(r *web.Call[web.NoBody]) (web.Reply, error) {
	id, err := streamIDParam(r.C, true)
	if err != nil {
		return web.Reply{}, err
	}
	pos, err := s.cfg.Commands.DeleteSSFStream(r.Ctx, id, actor(r.C, r.Meta))
	if err != nil {
		return web.Reply{}, err
	}
	s.waitRegistry(r.C, pos)
	return web.Done(pos), nil
}

func (s *SSF) getStatus(r *web.Call[web.NoBody]) (web.Reply, error) {
	id, err := streamIDParam(r.C, true)
	if err != nil {
		return web.Reply{}, err
	}
	cfg, _, err := s.cfg.Commands.SSFStream(r.Ctx, id)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusOK, statusJSON{StreamID: cfg.StreamID, Status: cfg.Status, Reason: cfg.Reason}, 0), nil
}

func (s *SSF) setStatus(r *web.Call[statusInput]) (web.Reply, error) {
	if r.In.StreamID == "" {
		return web.Reply{}, &domain.ValidationError{Field: "stream_id", Reason: "is required"}
	}
	cfg, pos, err := s.cfg.Commands.SetSSFStreamStatus(r.Ctx, r.In.StreamID, r.In.Status, r.In.Reason, actor(r.C, r.Meta))
	if err != nil {
		return web.Reply{}, err
	}
	s.waitRegistry(r.C, pos)
	return web.JSON(http.StatusOK, statusJSON{StreamID: cfg.StreamID, Status: cfg.Status, Reason: cfg.Reason}, pos), nil
}

func (s *SSF) verify(r *web.Call[verifyInput]) (web.Reply, error) {
	if r.In.StreamID == "" {
		return web.Reply{}, &domain.ValidationError{Field: "stream_id", Reason: "is required"}
	}
	pos, err := s.cfg.Commands.VerifySSFStream(r.Ctx, r.In.StreamID, r.In.State, actor(r.C, r.Meta))
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}

func (s *SSF) poll(r *web.Call[pollInput]) (web.Reply, error) {
	n := defaultPollEvents
	if r.In.MaxEvents != nil {
		if *r.In.MaxEvents < 0 {
			return web.Reply{}, &domain.ValidationError{Field: "maxEvents", Reason: "must not be negative"}
		}
		n = min(*r.In.MaxEvents, maxPollEvents)
	}
	if len(r.In.Ack)+len(r.In.SetErrs) > 2*maxPollEvents {
		return web.Reply{}, &domain.ValidationError{Field: "ack", Reason: "acknowledges more than 1000 SETs at once"}
	}
	ack := append([]string{}, r.In.Ack...)
	for jti := range r.In.SetErrs { // a SET the receiver refused is not sent again either
		ack = append(ack, jti)
	}
	immediate := r.In.ReturnImmediately || n == 0
	res, err := s.cfg.Transmitter.Poll(r.Ctx, r.ID, max(n, 1), immediate, ack)
	if err != nil {
		if err == ssf.ErrNotPoll {
			return web.Reply{}, web.Public(web.ErrInvalidRequest, "This stream is delivered by push, not poll.", err)
		}
		return web.Reply{}, err
	}
	if n == 0 {
		res.Sets = map[string]string{}
	}
	return web.JSON(http.StatusOK, pollJSON{Sets: res.Sets, MoreAvailable: res.MoreAvailable}, 0), nil
}
