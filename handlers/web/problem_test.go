package web

import (
	"errors"
	"fmt"
	"testing"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/domain/throttle"
	"github.com/vigil-auth/vigil/projections"
)

func TestProblemMapping(t *testing.T) {
	for _, tc := range []struct {
		err    error
		status int
		code   string
	}{
		{domain.ErrInvalidCredentials, 401, CodeInvalidCredentials},
		{domain.ErrInvalidCode, 401, CodeInvalidCredentials},
		{Public(ErrInvalidCredentialsSignedIn, "", domain.ErrInvalidCode), 403, CodeInvalidCredentials},
		{&throttle.Error{RetryAfter: 1500 * 1e6}, 429, CodeTooManyAttempts},
		{command.ErrReauthenticationRequired, 403, CodeReauthenticationRequired},
		{domain.ErrEnrollmentRequired, 403, CodeEnrollmentRequired},
		{domain.ErrNotFound, 404, CodeNotFound},
		{domain.ErrSessionNotFound, 404, CodeNotFound},
		{Public(ErrUnauthenticated, "", domain.ErrSessionNotFound), 401, CodeUnauthenticated},
		{domain.ErrConflict, 409, CodeConflict},
		{domain.ErrTwoFactorRequired, 409, CodeConflict},
		{&domain.ValidationError{Field: "email", Reason: "is required"}, 400, CodeInvalidRequest},
		{&domain.PasswordPolicyError{Reasons: []string{"Too short."}}, 400, CodeInvalidRequest},
		{domain.ErrInvalidInput, 400, CodeInvalidRequest},
		{command.ErrTicketInvalid, 401, CodeInvalidCredentials},
		{command.ErrUnknownClient, 400, CodeInvalidRequest},
		{credential.ErrUnknownKey, 500, CodeInternal},
		{command.ErrCeremonyInvalid, 400, CodeInvalidRequest},
		{command.ErrPasskeysDisabled, 404, CodeNotFound},
		{domain.ErrPasskeyInvalid, 401, CodeInvalidCredentials},
		{command.ErrPasskeyCloneSuspected, 401, CodeInvalidCredentials},
		{Public(ErrInvalidCredentialsSignedIn, "", domain.ErrPasskeyInvalid), 403, CodeInvalidCredentials},
		{Public(ErrInvalidCredentialsSignedIn, "", command.ErrPasskeyCloneSuspected), 403, CodeInvalidCredentials},
		{projections.ErrBadCursor, 400, CodeInvalidRequest},
		{fmt.Errorf("list: %w", projections.ErrBadFilter), 400, CodeInvalidRequest},
		// The shared sign-in state (--nats-url) away: fail closed, never a 500 or a pass.
		{fmt.Errorf("throttle: %w", fmt.Errorf("%w: nats: timeout", throttle.ErrUnavailable)), 503, CodeUnavailable},
	} {
		p, _ := ProblemFor(tc.err)
		if p.Status != tc.status || p.Code != tc.code {
			t.Errorf("%v: %d %s, want %d %s", tc.err, p.Status, p.Code, tc.status, tc.code)
		}
	}
	p, _ := ProblemFor(WithPasswordField("new_password", &domain.PasswordPolicyError{Reasons: []string{"Too short.", "Too common."}}))
	fe, _ := p.Extensions["errors"].([]FieldError)
	if p.Detail != "new_password: Too short. Too common." || len(fe) != 1 || fe[0].Field != "new_password" || len(fe[0].Reasons) != 2 {
		t.Errorf("password policy problem %+v", p)
	}
	joined := errorsJoin(&domain.ValidationError{Field: "email", Reason: "is required"}, &domain.ValidationError{Field: "password", Reason: "is required"})
	p, _ = ProblemFor(joined)
	if fe, _ := p.Extensions["errors"].([]FieldError); len(fe) != 2 || p.Detail != "email: is required; password: is required" {
		t.Errorf("joined validation problem %+v", p)
	}
	p, _ = ProblemFor(&throttle.Error{RetryAfter: 1500 * 1e6})
	if p.Extensions["retry_after"] != 2 {
		t.Errorf("throttle problem %+v", p)
	}
}

func errorsJoin(errs ...error) error { return errors.Join(errs...) }
