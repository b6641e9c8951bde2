package portal

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/handlers/api"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// The security team's pages (roles auditor and admin): find an account, the activity log
// across accounts with filters, and an account's page: its history as a timeline of
// events, its security state at a chosen moment and its active sessions, each of which can
// be signed out. They run the queries and commands of /api/v1/audit/...

func (p *Portal) auditPage(c *gin.Context) {
	if !p.waitMinPosition(c) {
		return
	}
	ctx := c.Request.Context()
	// Find an account: by email (exact, as typed at sign-in) or by id.
	if q := strings.TrimSpace(c.Query("find")); q != "" {
		id := ""
		if strings.Contains(q, "@") {
			if found, err := p.svc.LookupEmail(ctx, q); err == nil {
				id = found
			}
		} else if _, err := p.svc.Account(ctx, q); err == nil {
			id = q
		}
		if id == "" {
			form := map[string]string{"find": q}
			p.renderActivity(c, "audit", "/audit", projections.ActivityFilter{}, form,
				&domain.ValidationError{Field: "find", Reason: "No account has this email or id."}, nil)
			return
		}
		c.Redirect(http.StatusSeeOther, "/audit/accounts/"+url.PathEscape(id))
		return
	}
	f, form, ferr := activityForm(c)
	var errs []error
	if ferr != nil {
		errs = append(errs, ferr)
	}
	form["account"], form["ip"], form["country"], form["outcome"] = c.Query("account"), c.Query("ip"), c.Query("country"), c.Query("outcome")
	var err error
	if f.AccountID, err = web.IdParam(c, "account"); err != nil {
		errs = append(errs, &domain.ValidationError{Field: "account", Reason: "This is not an account id."})
	}
	if f.IP, err = web.IpParam(c, "ip"); err != nil {
		errs = append(errs, &domain.ValidationError{Field: "ip", Reason: "Enter an IPv4 or IPv6 address."})
	}
	if f.CountryCode, err = web.CountryParam(c, "country"); err != nil {
		errs = append(errs, &domain.ValidationError{Field: "country", Reason: "Enter a two-letter country code, e.g. GB."})
	}
	switch f.Outcome = form["outcome"]; f.Outcome {
	case "", "success", "failure":
	default:
		errs = append(errs, &domain.ValidationError{Field: "outcome", Reason: "Choose success or failure."})
	}
	p.renderActivity(c, "audit", "/audit", f, form, errors.Join(errs...), nil)
}

// auditAccountData is the account page of the security team.
type auditAccountData struct {
	ID       string
	Email    string
	Name     string
	At       string
	State    *domain.SecurityState
	Events   []timelineEvent
	Older    string
	Sessions []api.AuditSessionItemJSON
}

// timelineEvent is one event of the timeline.
type timelineEvent struct {
	Position uint64
	Time     time.Time
	Type     string
	Stream   string
	Actor    string
	IP       string
	Data     string
}

// auditTimelineLimit is how many events a timeline page shows.
const auditTimelineLimit = 50

// auditAtFormat is the format of the "security state at" input (<input type="datetime-local">, UTC).
const auditAtFormat = "2006-01-02T15:04"

func (p *Portal) auditAccountPage(c *gin.Context) {
	if !p.waitMinPosition(c) {
		return
	}
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/audit")
		return
	}
	ctx := c.Request.Context()
	a, err := p.svc.Account(ctx, id)
	if err != nil {
		p.fail(c, err, "/audit")
		return
	}
	d := auditAccountData{ID: id, Email: a.Email(), Name: strings.TrimSpace(a.FirstName() + " " + a.LastName()), At: c.Query("at")}
	pg := pageData{Title: "Account " + a.Email(), Nav: "audit", Errors: map[string]string{}}
	status := http.StatusOK

	// The timeline, oldest first, in pages after a position.
	var after uint64
	if raw := c.Query("after"); raw != "" {
		if after, err = strconv.ParseUint(raw, 10, 64); err != nil {
			pg.Errors["after"], status = "This page link is broken.", http.StatusBadRequest
		}
	}
	events, next, err := p.api.AccountEvents(ctx, id, after, auditTimelineLimit)
	if err != nil {
		p.fail(c, err, "/audit")
		return
	}
	for _, ev := range events {
		ev = api.RedactEvent(ev)
		te := timelineEvent{Position: ev.Position, Time: ev.RecordedAt, Type: ev.Type, Stream: ev.StreamID,
			IP: ev.Metadata.IP, Data: string(ev.Data)}
		te.Actor = string(ev.Metadata.Actor.Type)
		if ev.Metadata.Actor.ID != "" && ev.Metadata.Actor.ID != id {
			te.Actor += " " + ev.Metadata.Actor.ID
		}
		var compact map[string]any
		if json.Unmarshal(ev.Data, &compact) == nil {
			if b, err := json.Marshal(compact); err == nil {
				te.Data = string(b)
			}
		}
		d.Events = append(d.Events, te)
	}
	if next != "" {
		if pos, err := api.DecodeEventsCursor(id, next); err == nil {
			d.Older = "/audit/accounts/" + url.PathEscape(id) + "?after=" + strconv.FormatUint(pos, 10)
		}
	}

	// The security state at a moment (UTC).
	if d.At != "" {
		at, err := time.Parse(auditAtFormat, d.At)
		if err != nil {
			pg.Errors["at"], status = "Enter a date and time.", http.StatusBadRequest
		} else {
			st, err := projections.SecurityAt(ctx, p.api.Events, id, at.Add(time.Minute-time.Nanosecond))
			switch {
			case errors.Is(err, domain.ErrNotFound):
				pg.Errors["at"] = "The account did not exist yet at that time."
			case err != nil:
				p.fail(c, err, "/audit")
				return
			default:
				d.State = &st
			}
		}
	}

	rows, _, err := p.api.Reads.ActiveSessions(ctx, id, portalSessionsLimit, "")
	if err != nil {
		p.fail(c, err, "/audit")
		return
	}
	d.Sessions = p.api.LiveSessions(rows, web.CallerOf(c).ID)
	pg.Data = d
	p.render(c, status, "audit_account", pg)
}

func (p *Portal) auditSignOut(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/audit")
		return
	}
	back := safeNext(c.PostForm("back"), "/audit")
	rm := web.RequestMeta(c)
	rm.Actor = &domain.Actor{Type: domain.ActorAdmin, ID: web.CallerOf(c).AccountID}
	pos, err := p.svc.AdminSignOut(c.Request.Context(), id, rm)
	if err != nil {
		p.fail(c, err, back)
		return
	}
	if id == web.CallerOf(c).ID {
		p.ClearSessionCookie(c)
		c.Redirect(http.StatusSeeOther, "/signin")
		return
	}
	p.done(c, pos, withQuery(back, "done=signed-out"))
}
