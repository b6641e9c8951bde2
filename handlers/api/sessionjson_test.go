package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
)

// TestSessionJSONMatchesEncodingJSON: whoami's hand-written encoder writes exactly what
// encoding/json (gin's c.JSON) writes, for plain sessions and for values that need escaping,
// invalid UTF-8, zero and non-UTC times and a nil AMR.
func TestSessionJSONMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 12, 14, 40, 487366752, time.UTC)
	odd := []string{"", "plain", `quote"back\slash`, "<script>&amp;", "tab\tnewline\n\x01", "é ü 日本",
		"\u2028\u2029", "bad\xffutf8", "\x7f", "~ok~"}
	views := []sessionJSON{
		sessionView(domain.Session{ID: "01a236ad-a967-7584-88f1-b19d7a1f463c", AccountID: "01a236ad-a8a6-7782-991a-6c1b5d60a90d",
			AAL: domain.AAL1, AMR: []string{domain.AMRPassword}, AuthenticatedAt: at, ExpiresAt: at.Add(12 * time.Hour)}),
		sessionView(domain.Session{ID: "s", AccountID: "a", ActorAccountID: "d", AAL: domain.AAL2,
			AMR: []string{domain.AMRPassword, domain.AMROTP}, Restricted: true,
			AuthenticatedAt: at.In(time.FixedZone("x", -7*3600)), ExpiresAt: at.Add(time.Second)}),
		{}, // zero times, nil AMR
		{AMR: []string{}, AuthenticatedAt: APITime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))},
	}
	for _, s := range odd {
		views = append(views, sessionJSON{AccountID: s, ActorAccountID: s, SessionID: s, AAL: s, AMR: []string{s, s}})
	}
	for _, v := range views {
		want, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if got := v.appendJSON(nil); string(got) != string(want) {
			t.Errorf("appendJSON(%+v)\n got %s\nwant %s", v, got, want)
		}
	}
}

// TestWhoamiAnswersLikeCJSON: the whoami handler's status, Content-Type and body are those
// gin's c.JSON gives the same session, also when the pooled buffer is reused.
func TestWhoamiAnswersLikeCJSON(t *testing.T) {
	gin.SetMode(gin.ReleaseMode)
	sess := domain.Session{ID: "s1", AccountID: "a1", AAL: domain.AAL1, AMR: []string{domain.AMRPassword},
		AuthenticatedAt: time.Unix(1764677680, 5).UTC(), ExpiresAt: time.Unix(1764720880, 0).UTC()}
	serve := func(h gin.HandlerFunc, sess domain.Session) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		c, _ := gin.CreateTestContext(rec)
		c.Request = httptest.NewRequest(http.MethodGet, "/api/v1/whoami", nil)
		c.Set("vigil.caller", sess)
		h(c)
		return rec
	}
	api := &API{}
	for _, s := range []domain.Session{sess, {ID: "a-longer-session-id-than-before", AccountID: "<acct>", AAL: domain.AAL2}, sess} {
		got := serve(api.whoami, s)
		want := serve(func(c *gin.Context) { c.JSON(http.StatusOK, sessionView(s)) }, s)
		if got.Code != want.Code || got.Header().Get("Content-Type") != want.Header().Get("Content-Type") || got.Body.String() != want.Body.String() {
			t.Errorf("whoami: %d %q %s, c.JSON: %d %q %s", got.Code, got.Header().Get("Content-Type"), got.Body,
				want.Code, want.Header().Get("Content-Type"), want.Body)
		}
	}
}
