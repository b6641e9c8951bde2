package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/handlers/web"
)

// recoveryRoutes: email verification, password reset and "this wasn't me" (API.md "Mail,
// recovery and account protection"). The links' routes need no session: the token is the
// credential. The portal's report of an activity entry is served with the read models (it
// checks the entry is the caller's there).
func (s *API) recoveryRoutes() []web.Route {
	tags := []string{"recovery"}
	tokenBody := func(desc string, extra map[string]web.Schema, required ...string) *web.RequestBody {
		props := map[string]web.Schema{"token": {"type": "string", "description": desc}}
		for k, v := range extra {
			props[k] = v
		}
		return web.JsonBody(web.Object(props, append([]string{"token"}, required...)...))
	}
	routes := []web.Route{
		{
			Method: http.MethodPost, Path: "/email/verify", Access: web.AccessPublic,
			Op: web.Operation{
				ID: "verifyEmail", Summary: "Confirm the email with a verification link's token", Tags: tags,
				Description: "The token of a `/verify-email?token=` link (mailed at registration, after an email change, or on " +
					"request). Only the newest link for the account's current email works, once, within 24 hours. Then " +
					"GET /api/v1/me shows email_verified true (EmailVerified).",
				Request:   tokenBody("The token of the link.", nil),
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("The email is verified.")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusBadRequest, Text: invalidTokenText}},
			Handler: web.Command(s.Core, web.MetaSignIn, s.verifyEmail),
		},
		{
			Method: http.MethodPost, Path: "/me/email/verification", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "requestEmailVerification", Summary: "Mail a new verification link", Tags: tags,
				Description: "EmailVerificationRequested for the current email: a new link is mailed, and earlier links stop " +
					"working. Throttled per account (each request counts).",
				Responses: map[int]web.Response{http.StatusAccepted: web.NoContent("A verification mail will be sent.")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusTooManyRequests, Text: tooManyMailsText}},
			Handler: web.Command(s.Core, web.MetaCaller, s.requestEmailVerification),
		},
		{
			Method: http.MethodPost, Path: "/password-reset", Access: web.AccessPublic,
			Op: web.Operation{
				ID: "requestPasswordReset", Summary: "Ask for a password reset link", Tags: tags,
				Description: "202 whatever the email: an account's email gets a `/reset-password?token=` link " +
					"(PasswordResetRequested; it works once, within 30 minutes, and supersedes earlier links), an unknown " +
					"email gets nothing, and the answer and its time are the same. Throttled per email and per client " +
					"address like sign-ins (each request counts). Vigil-Position is the log's head.",
				Request: web.JsonBody(web.Object(map[string]web.Schema{"email": {"type": "string", "format": "email"}}, "email")),
				Responses: map[int]web.Response{http.StatusAccepted: web.NoContent(
					"Accepted: if the email has an account, a reset link is mailed to it.")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusTooManyRequests, Text: tooManyMailsText}},
			Handler: web.Command(s.Core, web.MetaSignIn, s.requestPasswordReset),
		},
		{
			Method: http.MethodPost, Path: "/password-reset/confirm", Access: web.AccessPublic,
			Op: web.Operation{
				ID: "confirmPasswordReset", Summary: "Set a new password with a reset link's token", Tags: tags,
				Description: "PasswordResetCompleted; every session of the account is signed out (reason password_reset). " +
					"Second factors stay, so the next sign-in still asks for one. The new password must meet the " +
					"password rules (400 invalid_request naming new_password).",
				Request:   tokenBody("The token of the `/reset-password?token=` link.", map[string]web.Schema{"new_password": s.newPasswordSchema()}, "new_password"),
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("The password was reset.")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusBadRequest, Text: invalidTokenText + ", or followed by a password change"}},
			Handler: web.Command(s.Core, web.MetaSignIn, s.confirmPasswordReset),
		},
		{
			Method: http.MethodPost, Path: "/not-me", Access: web.AccessPublic,
			Op: web.Operation{
				ID: "reportNotMe", Summary: "\"This wasn't me\" from a mail's link", Tags: tags,
				Description: "The token of a `/not-me?token=` link, which every security mail carries: every session of the " +
					"account is signed out (reason reported_not_me), SuspiciousActivityReported names the event the mail was " +
					"about (source mail), and a reset link is mailed (PasswordResetRequested). The link works for 7 days, " +
					"once per event.",
				Request:   tokenBody("The token of the link.", nil),
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("Reported; every session was signed out.")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusBadRequest, Text: "invalid_token: the token is malformed, of another link, older than 7 days, or its event was reported already"}},
			Handler: web.Command(s.Core, web.MetaSignIn, s.reportNotMe),
		},
	}
	if s.Reads != nil {
		routes = append(routes, web.Route{
			Method: http.MethodPost, Path: "/me/activity/:id/not-me", Access: web.AccessSignedIn,
			Op: web.Operation{
				ID: "reportActivity", Summary: "\"This wasn't me\" about an entry of the caller's activity log", Tags: tags,
				Description: "id is an activity item's id. Every other session of the account is signed out (reason " +
					"reported_not_me; this one stays), SuspiciousActivityReported names the event (source portal), and a " +
					"reset link is mailed. Reporting an entry again changes nothing.",
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("Reported.")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: the caller's activity log has no entry with this id"}},
			Handler: web.Command(s.Core, web.MetaCaller, s.reportActivity),
		})
	}
	return routes
}

// Error answers of the recovery routes.
const (
	invalidTokenText = "invalid_token: the token is malformed, of another link, used, expired or superseded by a newer link"
	tooManyMailsText = "too_many_attempts: too many requests; the Retry-After header says how many seconds to wait"
)

type tokenRequest struct {
	Token string `json:"token"`
}

// Check refuses a body without a token.
func (r tokenRequest) Check() error { return web.Required("token", r.Token) }

func (s *API) verifyEmail(r *web.Call[tokenRequest]) (web.Reply, error) {
	pos, err := s.svc.VerifyEmail(r.Ctx, r.In.Token, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}

func (s *API) requestEmailVerification(r *web.Call[web.NoBody]) (web.Reply, error) {
	pos, err := s.svc.RequestEmailVerification(r.Ctx, r.Caller, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Accepted(pos), nil
}

type passwordResetRequest struct {
	Email string `json:"email"`
}

// Check refuses a body without an email.
func (r passwordResetRequest) Check() error { return web.Required("email", r.Email) }

// requestPasswordReset answers 202 with the log's head as Vigil-Position whatever the email:
// the position the request wrote would tell that the email has an account.
func (s *API) requestPasswordReset(r *web.Call[passwordResetRequest]) (web.Reply, error) {
	if err := s.svc.RequestPasswordReset(r.Ctx, r.In.Email, r.Meta); err != nil {
		return web.Reply{}, err
	}
	return web.Accepted(0), nil
}

type confirmResetRequest struct {
	Token       string `json:"token"`
	NewPassword string `json:"new_password"`
}

// Check refuses a body without the token or the new password.
func (r confirmResetRequest) Check() error {
	return errors.Join(web.Required("token", r.Token), web.Required("new_password", r.NewPassword))
}

func (s *API) confirmPasswordReset(r *web.Call[confirmResetRequest]) (web.Reply, error) {
	res, err := s.svc.ConfirmPasswordReset(r.Ctx, r.In.Token, r.In.NewPassword, r.Meta)
	if err != nil {
		return web.Reply{}, web.WithPasswordField("new_password", err)
	}
	return web.Done(res.Position), nil
}

func (s *API) reportNotMe(r *web.Call[tokenRequest]) (web.Reply, error) {
	pos, err := s.svc.ReportNotMe(r.Ctx, r.In.Token, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}

func (s *API) reportActivity(r *web.Call[web.NoBody]) (web.Reply, error) {
	pos, err := s.ReportActivity(r.Ctx, r.Caller, r.ID, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}

// ReportActivity reports the entry id of the caller's activity log as "this wasn't me"
// (the JSON API's and the portal's): an id that is not an entry of the caller's log, as the
// read models have it, is not found.
func (s *API) ReportActivity(ctx context.Context, caller domain.Session, id string, rm command.RequestMeta) (uint64, error) {
	if _, err := s.svc.Authorize(caller, domain.CapControl, false); err != nil {
		return 0, err
	}
	if _, ok, err := s.Reads.ActivityEntry(ctx, caller.AccountID, id); err != nil {
		return 0, err
	} else if !ok {
		return 0, web.Public(web.ErrNotFound, "Your activity log has no entry with this id.", nil)
	}
	return s.svc.ReportActivity(ctx, caller, id, rm)
}
