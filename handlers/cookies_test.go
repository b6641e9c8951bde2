package handlers_test

import (
	"net/http"
	"testing"

	"github.com/vigil-auth/vigil/handlers/internal/handlertest"
)

// TestCookiesSecureUnlessInsecureCookies: the session cookie (set and cleared) and the
// portal's anonymous form nonce cookie carry Secure, except with InsecureCookies (a trial
// over plain HTTP on a LAN address, where a browser would drop a Secure cookie).
func TestCookiesSecureUnlessInsecureCookies(t *testing.T) {
	t.Parallel()
	for _, insecure := range []bool{false, true} {
		e := newEnv(t, func(c *handlertest.Config) { c.InsecureCookies = insecure })
		e.register("ann@example.com")
		r := e.do("POST", "/api/v1/login", map[string]string{"email": "ann@example.com", "password": testPassword}, nil)
		s := e.sessionFrom(r, e.expect(r, 200, ""))
		set := r.cookie("vigil_session")
		out := e.do("POST", "/api/v1/logout", nil, s.auth())
		e.expect(out, 204, "")
		cleared := out.cookie("vigil_session")
		// The portal is not in the OpenAPI document that e.do checks against.
		page, err := e.http.Get(e.base + "/signin")
		if err != nil {
			t.Fatal(err)
		}
		page.Body.Close()
		var form *http.Cookie
		for _, c := range page.Cookies() {
			if c.Name == "vigil_form" {
				form = c
			}
		}
		if set == nil || cleared == nil || form == nil {
			t.Fatalf("insecure %v: cookies set %v, cleared %v, form %v", insecure, set, cleared, form)
		}
		for name, ck := range map[string]bool{"session": set.Secure, "cleared session": cleared.Secure, "form nonce": form.Secure} {
			if ck == insecure {
				t.Errorf("InsecureCookies %v: the %s cookie has Secure %v", insecure, name, ck)
			}
		}
		if !set.HttpOnly || !form.HttpOnly {
			t.Errorf("InsecureCookies %v: cookies lost HttpOnly", insecure)
		}
	}
}
