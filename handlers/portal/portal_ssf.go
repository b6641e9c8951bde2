package portal

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
	"github.com/vigil-auth/vigil/handlers/web"
)

// The administrators' Shared Signals page (/audit/shared-signals): every stream with its
// delivery, status (and the reason of a disabling), lag behind the log, SETs waiting for an
// acknowledgement and failing pushes. Streams are managed through the API (ssf:manage).

// ssfRow is one stream on the page.
type ssfRow struct {
	ID, Description, Method, Endpoint, Status, Reason string
	Events                                            int
	Lag                                               uint64
	Pending                                           int
	OldestPending, FailingSince                       string
	LastError                                         string
}

// SetSharedSignals shows the Shared Signals streams of list on the administrators' page; without
// it the page says the transmitter is not running.
func (p *Portal) SetSharedSignals(list func(*gin.Context) ([]ssf.StreamInfo, error)) {
	p.ssfStreams = list
}

func (p *Portal) ssfPage(c *gin.Context) {
	a, err := p.svc.Account(c.Request.Context(), web.CallerOf(c).AccountID)
	if err != nil || !a.HasRole(domain.RoleAdmin) {
		p.errorPage(c, http.StatusForbidden, "This page is for administrators (role admin).")
		return
	}
	var rows []ssfRow
	if p.ssfStreams != nil {
		list, err := p.ssfStreams(c)
		if err != nil {
			p.fail(c, err, "")
			return
		}
		for _, s := range list {
			method := "push"
			if s.Config.DeliveryMethod == ssf.MethodPoll {
				method = "poll"
			}
			r := ssfRow{ID: s.Config.StreamID, Description: s.Config.Description, Method: method, Endpoint: s.Config.EndpointURL,
				Status: s.Config.Status, Reason: s.Config.Reason, Events: len(ssf.Delivered(s.Config.EventsRequested)),
				Lag: s.Lag, Pending: s.Pending, LastError: s.LastError}
			if !s.OldestPending.IsZero() {
				r.OldestPending = time.Since(s.OldestPending).Round(time.Second).String()
			}
			if !s.FailingSince.IsZero() {
				r.FailingSince = s.FailingSince.UTC().Format(time.RFC3339)
			}
			rows = append(rows, r)
		}
	}
	p.render(c, http.StatusOK, "ssf", pageData{Title: "Shared Signals", Nav: "audit", Data: rows})
}
