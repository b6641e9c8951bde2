package ssf

import (
	"net/http"

	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
	"github.com/vigil-auth/vigil/handlers/web"
)

// WellKnown is the transmitter metadata route, served at the root (not under /api/v1).
func (s *SSF) WellKnown() web.Route {
	return web.Route{
		Method: http.MethodGet, Path: WellKnownPath, Access: web.AccessPublic,
		Op: web.Operation{
			ID: "getSsfConfiguration", Summary: "Shared Signals transmitter metadata", Tags: []string{"shared signals"},
			Description: "SSF 1.0 transmitter configuration metadata: spec_version 1_0, the issuer (the public URL), " +
				"jwks_uri, the delivery methods (push, RFC 8935; poll, RFC 8936), the configuration, status and verification endpoints, default_subjects ALL.",
			Responses: map[int]web.Response{http.StatusOK: {Description: "The metadata.", Schema: web.Ref("SsfConfiguration")}},
		},
		Handler: web.Command(s.core, web.MetaNone, s.configuration),
	}
}

// Routes defines the schemas and returns the routes under /api/v1.
func (s *SSF) Routes() []web.Route {
	s.defineSchemas()
	tags := []string{"shared signals"}
	streamIDQuery := func(required bool, desc string) []web.Param {
		return []web.Param{{Name: "stream_id", In: "query", Required: required, Description: desc}}
	}
	notFound := web.ProblemLine{Status: http.StatusNotFound, Text: "not_found: no stream has this id (or it was deleted)"}
	badStream := web.ProblemLine{Status: http.StatusBadRequest, Text: "invalid_request: stream_id is missing"}
	conflict := web.ProblemLine{Status: http.StatusConflict, Text: "conflict: the stream changed meanwhile; read it and try again"}
	return []web.Route{
		{
			Method: http.MethodGet, Path: JWKSPath, Access: web.AccessPublic,
			Op: web.Operation{
				ID: "getSsfJwks", Summary: "The keys that sign Security Event Tokens", Tags: tags,
				Description: "A JWK set (RFC 7517): the RS256 key that signs SETs (--ssf-signing-key-file) and keys replaced by `vigil ssf rotate-key` in the last 24 hours. kid is the key's RFC 7638 thumbprint.",
				Responses: map[int]web.Response{http.StatusOK: {Description: "The JWK set.", Schema: web.Object(map[string]web.Schema{
					"keys": web.ArrayOf(web.Schema{"type": "object", "additionalProperties": true}),
				}, "keys")}},
			},
			Handler: web.Command(s.core, web.MetaNone, s.jwks),
		},
		{
			Method: http.MethodPost, Path: StreamsPath, Access: web.AccessSSF,
			Op: web.Operation{
				ID: "createSsfStream", Summary: "Create a Shared Signals stream", Tags: tags,
				Description: "Records SSFStreamChanged (created, status enabled). From its position on, every mapped event of the log becomes a SET for this stream. " +
					"aud is the stream id unless given; for poll, delivery.endpoint_url is the transmitter's poll URL. The answer comes once the transmitter runs the stream (at most 2 s).",
				Request:   web.JsonBody(web.Ref("SsfStreamConfiguration")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "The stream.", Schema: web.Ref("SsfStream")}},
			},
			Handler: web.Command(s.core, web.MetaSignIn, s.create),
		},
		{
			Method: http.MethodGet, Path: StreamsPath, Access: web.AccessSSF,
			Op: web.Operation{
				ID: "getSsfStreams", Summary: "A stream, or every stream", Tags: tags, Params: streamIDQuery(false, "The stream; without it, every stream (an array)."),
				Description: "With stream_id, the stream as its last SSFStreamChanged left it; without, an array of every stream.",
				Responses: map[int]web.Response{http.StatusOK: {Description: "The stream, or an array of streams.",
					Schema: web.Schema{"oneOf": []web.Schema{web.Ref("SsfStream"), web.ArrayOf(web.Ref("SsfStream"))}}}},
			},
			Errors:  []web.ProblemLine{notFound, {Status: http.StatusBadRequest, Text: "invalid_request: stream_id is empty"}},
			Handler: web.Command(s.core, web.MetaNone, s.read),
		},
		{
			Method: http.MethodPatch, Path: StreamsPath, Access: web.AccessSSF,
			Op: web.Operation{
				ID: "changeSsfStream", Summary: "Change a stream's configuration", Tags: tags,
				Description: "Records SSFStreamChanged (updated): members given replace the stream's (delivery, events_requested, description, aud); read-only members are ignored.",
				Request:     web.JsonBody(web.Ref("SsfStreamConfiguration")),
				Responses:   map[int]web.Response{http.StatusOK: {Description: "The stream after the change.", Schema: web.Ref("SsfStream")}},
			},
			Errors:  []web.ProblemLine{notFound, conflict},
			Handler: web.Command(s.core, web.MetaSignIn, s.update),
		},
		{
			Method: http.MethodDelete, Path: StreamsPath, Access: web.AccessSSF,
			Op: web.Operation{
				ID: "deleteSsfStream", Summary: "Delete a stream", Tags: tags, Params: streamIDQuery(true, "The stream."),
				Description: "Records SSFStreamChanged (deleted): nothing more is made or delivered; SETs not yet acknowledged are dropped.",
				Responses:   map[int]web.Response{http.StatusNoContent: web.NoContent("Deleted.")},
			},
			Errors:  []web.ProblemLine{notFound, badStream, conflict},
			Handler: web.Command(s.core, web.MetaSignIn, s.remove),
		},
		{
			Method: http.MethodGet, Path: StatusPath, Access: web.AccessSSF,
			Op: web.Operation{
				ID: "getSsfStatus", Summary: "A stream's status", Tags: tags, Params: streamIDQuery(true, "The stream."),
				Description: "enabled, paused (events are kept and delivered when enabled) or disabled (events are dropped), with the reason of a disabling (a push stream that failed for a day is disabled by the transmitter).",
				Responses:   map[int]web.Response{http.StatusOK: {Description: "The status.", Schema: web.Ref("SsfStreamStatus")}},
			},
			Errors:  []web.ProblemLine{notFound, badStream},
			Handler: web.Command(s.core, web.MetaNone, s.getStatus),
		},
		{
			Method: http.MethodPost, Path: StatusPath, Access: web.AccessSSF,
			Op: web.Operation{
				ID: "setSsfStatus", Summary: "Enable, pause or disable a stream", Tags: tags,
				Description: "Records SSFStreamChanged (status). Paused: events are kept and delivered once enabled. Disabled: SETs waiting are dropped, and so are events until it is enabled again.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"stream_id": web.StringSchema(),
					"status":    {"type": "string", "enum": []string{ssf.StatusEnabled, ssf.StatusPaused, ssf.StatusDisabled}},
					"reason":    {"type": "string", "maxLength": 500},
				}, "stream_id", "status")),
				Responses: map[int]web.Response{http.StatusOK: {Description: "The status after the change.", Schema: web.Ref("SsfStreamStatus")}},
			},
			Errors:  []web.ProblemLine{notFound, conflict},
			Handler: web.Command(s.core, web.MetaSignIn, s.setStatus),
		},
		{
			Method: http.MethodPost, Path: VerificationPath, Access: web.AccessSSF,
			Op: web.Operation{
				ID: "startSsfVerification", Summary: "Ask for a verification event", Tags: tags,
				Description: "Records SSFStreamChanged (verification): the stream gets a verification SET carrying state, in order with its other SETs.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"stream_id": web.StringSchema(),
					"state":     {"type": "string", "maxLength": 1024},
				}, "stream_id")),
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("The verification SET is on its way.")},
			},
			Errors:  []web.ProblemLine{notFound, conflict},
			Handler: web.Command(s.core, web.MetaSignIn, s.verify),
		},
		{
			Method: http.MethodPost, Path: PollPathPrefix + ":id", Access: web.AccessSSF,
			Op: web.Operation{
				ID: "pollSsfEvents", Summary: "Poll a stream's SETs (RFC 8936)", Tags: tags,
				Params: []web.Param{{Name: "id", In: "path", Required: true, Description: "The stream's id."}},
				Description: "Removes the SETs named in ack (and setErrs), then answers up to maxEvents (default 100, at most 500) SETs not yet acknowledged, oldest first. " +
					"With none waiting it waits up to 30 s for one unless returnImmediately. A paused stream answers none. Acknowledged SETs are never returned again.",
				Request: &web.RequestBody{Schema: web.Object(map[string]web.Schema{
					"maxEvents":         {"type": "integer", "minimum": 0},
					"returnImmediately": web.BoolSchema(),
					"ack":               web.ArrayOf(web.StringSchema()),
					"setErrs":           {"type": "object", "additionalProperties": web.Schema{"type": "object"}},
				})},
				Responses: map[int]web.Response{http.StatusOK: {Description: "The SETs by jti.", Schema: web.Object(map[string]web.Schema{
					"sets":          {"type": "object", "additionalProperties": web.StringSchema()},
					"moreAvailable": web.BoolSchema(),
				}, "sets", "moreAvailable")}},
			},
			Errors: []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: no stream has this id"},
				{Status: http.StatusBadRequest, Text: "invalid_request: the stream is delivered by push"}},
			Handler: web.Command(s.core, web.MetaNone, s.poll),
		},
	}
}

func (s *SSF) defineSchemas() {
	delivery := web.Object(map[string]web.Schema{
		"method":       {"type": "string", "enum": []string{ssf.MethodPush, ssf.MethodPoll}},
		"endpoint_url": {"type": "string", "format": "uri", "description": "Push: the receiver's URL (required). Poll: the transmitter's poll URL (answered, not given)."},
	}, "method")
	events := web.ArrayOf(web.Schema{"type": "string", "format": "uri"})
	s.core.Doc.Define("SsfConfiguration", web.Object(map[string]web.Schema{
		"spec_version": web.StringSchema(), "issuer": web.StringSchema(), "jwks_uri": web.StringSchema(),
		"delivery_methods_supported": web.ArrayOf(web.StringSchema()), "configuration_endpoint": web.StringSchema(),
		"status_endpoint": web.StringSchema(), "verification_endpoint": web.StringSchema(), "default_subjects": web.StringSchema(),
		"authorization_schemes": web.ArrayOf(web.Object(map[string]web.Schema{"spec_urn": web.StringSchema()}, "spec_urn")),
	}, "spec_version", "issuer", "jwks_uri", "delivery_methods_supported", "configuration_endpoint", "status_endpoint", "verification_endpoint", "default_subjects"))
	s.core.Doc.Define("SsfStreamConfiguration", web.Object(map[string]web.Schema{
		"stream_id":        {"type": "string", "description": "PATCH: the stream to change (required). POST: not allowed."},
		"delivery":         delivery,
		"events_requested": events,
		"description":      {"type": "string", "maxLength": 500},
		"aud":              {"type": "string", "maxLength": 256, "description": "The SETs' aud; default the stream id."},
		"iss":              {"type": "string", "description": "Read-only: ignored."},
		"events_supported": {"type": "array", "description": "Read-only: ignored."},
		"events_delivered": {"type": "array", "description": "Read-only: ignored."},
	}))
	s.core.Doc.Define("SsfStream", web.Object(map[string]web.Schema{
		"stream_id": web.StringSchema(), "iss": web.StringSchema(), "aud": web.StringSchema(), "delivery": delivery,
		"events_supported": events, "events_requested": events, "events_delivered": events, "description": web.StringSchema(),
	}, "stream_id", "iss", "aud", "delivery", "events_supported", "events_requested", "events_delivered"))
	s.core.Doc.Define("SsfStreamStatus", web.Object(map[string]web.Schema{
		"stream_id": web.StringSchema(),
		"status":    {"type": "string", "enum": []string{ssf.StatusEnabled, ssf.StatusPaused, ssf.StatusDisabled}},
		"reason":    web.StringSchema(),
	}, "stream_id", "status"))
}
