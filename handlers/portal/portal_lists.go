package portal

import (
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// The portal's Sessions and Activity pages (and the activity table of the security team's
// page), answered from the read models with the queries of GET /api/v1/me/sessions and
// /me/activity.

// portalSessionsLimit is how many sessions the Sessions page lists.
const portalSessionsLimit = 100

// portalActivityLimit is the page size of the Activity page.
const portalActivityLimit = 25

// mapSample is how many recent entries the map's places come from.
const mapSample = 500

// waitMinPosition honours ?min_position=P on the portal's list pages as the JSON API's
// reads do: it waits (at most 2 s) until the read models include P, e.g. a sign-in made
// elsewhere whose Vigil-Position the caller knows. A value that is not a non-negative
// integer gets the 400 error page; ok is false then.
func (p *Portal) waitMinPosition(c *gin.Context) (ok bool) {
	raw, given := c.GetQuery(web.MinPositionParam)
	if !given {
		return true
	}
	pos, err := strconv.ParseUint(raw, 10, 64)
	if err != nil {
		p.errorPage(c, http.StatusBadRequest, "min_position must be a non-negative integer (a Vigil-Position value).")
		return false
	}
	p.wait(c.Request.Context(), pos)
	return true
}

func (p *Portal) sessionsPage(c *gin.Context) {
	if !p.waitMinPosition(c) {
		return
	}
	ctx := c.Request.Context()
	caller := web.CallerOf(c)
	p.api.AwaitSession(ctx, caller.ID)
	rows, _, err := p.api.Reads.ActiveSessions(ctx, caller.AccountID, portalSessionsLimit, "")
	if err != nil {
		p.fail(c, err, "/sessions")
		return
	}
	p.render(c, http.StatusOK, "sessions", pageData{Title: "Sessions", Nav: "sessions", Data: p.api.LiveSessions(rows, caller.ID)})
}

func (p *Portal) signOutSession(c *gin.Context) {
	id, err := web.PathID(c, "id")
	if err != nil {
		p.fail(c, err, "/sessions")
		return
	}
	caller := web.CallerOf(c)
	pos, err := p.svc.SignOut(c.Request.Context(), caller, id, web.RequestMeta(c))
	if err != nil {
		p.fail(c, err, "/sessions")
		return
	}
	if id == caller.ID {
		p.ClearSessionCookie(c)
		c.Redirect(http.StatusSeeOther, "/signin?done=bye")
		return
	}
	p.done(c, pos, "/sessions?done=signed-out")
}

func (p *Portal) signOutOthers(c *gin.Context) {
	res, err := p.svc.SignOutOthers(c.Request.Context(), web.CallerOf(c), web.RequestMeta(c))
	if err != nil {
		p.fail(c, err, "/sessions")
		return
	}
	p.done(c, res.Position, "/sessions?done=signed-out-others")
}

// activityData is the data of an activity table with its filters and map.
type activityData struct {
	Rows  []projections.ActivityRow
	Types []string
	// Older is the link to the next (older) page; "" on the last.
	Older string
	// First is the link back to the newest page; "" on it.
	First string
	Map   worldMap
	// Action is the filter form's target when it is not /activity or /audit (an
	// organisation's activity page); OrgID and OrgName name that organisation.
	Action, OrgID, OrgName string
	// Who maps account ids to emails for a table that names the member of each row.
	Who map[string]string
	// NotMe: each sign-in row gets a "This wasn't me" button (the caller's own Activity page).
	NotMe bool
}

// portalDate is the format of the filters' date inputs (<input type="date">).
const portalDate = "2006-01-02"

// activityForm reads the Activity filters of the query: type (one event type or all),
// from and to (dates, UTC, to inclusive) and cursor. Errors name their field.
func activityForm(c *gin.Context) (projections.ActivityFilter, map[string]string, error) {
	f := projections.ActivityFilter{Limit: portalActivityLimit, Cursor: c.Query("cursor")}
	form := map[string]string{"type": c.Query("type"), "from": c.Query("from"), "to": c.Query("to")}
	var errs []error
	if t := form["type"]; t != "" {
		if !web.KnownEventTypes[t] {
			errs = append(errs, &domain.ValidationError{Field: "type", Reason: "Choose an event type from the list."})
		} else {
			f.Types = []string{t}
		}
	}
	for _, name := range []string{"from", "to"} {
		raw := form[name]
		if raw == "" {
			continue
		}
		d, err := time.Parse(portalDate, raw)
		if err != nil {
			errs = append(errs, &domain.ValidationError{Field: name, Reason: "Enter a date as YYYY-MM-DD."})
			continue
		}
		if name == "from" {
			f.From = d
		} else {
			f.To = d.Add(24*time.Hour - time.Nanosecond)
		}
	}
	if len(errs) == 0 && !f.From.IsZero() && !f.To.IsZero() && f.From.After(f.To) {
		errs = append(errs, &domain.ValidationError{Field: "to", Reason: "The end must not be before the start."})
	}
	if len(f.Cursor) > web.MaxCursor {
		errs = append(errs, &domain.ValidationError{Field: "cursor", Reason: "This page link is broken; start from the newest entries."})
	}
	return f, form, errors.Join(errs...)
}

func (p *Portal) activityPage(c *gin.Context) {
	if !p.waitMinPosition(c) {
		return
	}
	f, form, err := activityForm(c)
	f.AccountID = web.CallerOf(c).AccountID
	p.renderActivity(c, "activity", "/activity", f, form, err, func(d *activityData) {
		d.NotMe = web.CallerOf(c).Allows(domain.CapControl) == nil
	})
}

// renderActivity runs the activity query f and shows page name (the Activity page, or the
// security team's page with extra filters in form), with the map of the places of the
// most recent entries that match the filters. A filter error (ferr) is shown next to its
// field with status 400, and no rows.
func (p *Portal) renderActivity(c *gin.Context, name, path string, f projections.ActivityFilter, form map[string]string, ferr error, extra func(*activityData)) {
	pg := pageData{Title: "Activity", Nav: "activity", Form: form}
	switch name {
	case "audit":
		pg.Title, pg.Nav = "Security team", "audit"
	case "org_activity":
		pg.Title, pg.Nav = "Members' activity", "orgs"
	}
	d := activityData{Types: activityTypeChoices()}
	status := http.StatusOK
	if ferr == nil {
		rows, next, err := p.api.Reads.Activity(c.Request.Context(), f)
		if err != nil {
			if errors.Is(err, projections.ErrBadCursor) {
				ferr = &domain.ValidationError{Field: "cursor", Reason: "This page link is broken; start from the newest entries."}
			} else {
				p.fail(c, err, path)
				return
			}
		} else {
			d.Rows = rows
			q := url.Values{}
			for k, v := range form {
				if v != "" {
					q.Set(k, v)
				}
			}
			if f.Cursor != "" {
				d.First = path + "?" + q.Encode()
			}
			if next != "" {
				q.Set("cursor", next)
				d.Older = path + "?" + q.Encode()
			}
			mf := f
			mf.Cursor, mf.Limit = "", mapSample
			if places, _, err := p.api.Reads.Activity(c.Request.Context(), mf); err == nil {
				d.Map = newWorldMap(places)
			}
		}
	}
	if ferr != nil {
		fields, msg, st := fieldErrors(ferr)
		pg.Errors, pg.Error, status = fields, msg, st
	}
	if extra != nil {
		extra(&d)
	}
	pg.Data = d
	p.render(c, status, name, pg)
}

// activityTypeChoices are the event types the type filter offers.
func activityTypeChoices() []string { return projections.ActivityTypes() }

// locationText shows a location for people: "City, Region, Country", or "—".
func locationText(l *geoip.Location) string {
	if l == nil {
		return "—"
	}
	out := ""
	for _, part := range []string{l.City, l.Region, l.Country} {
		if part == "" {
			continue
		}
		if out != "" {
			out += ", "
		}
		out += part
	}
	if out == "" {
		return "—"
	}
	return out
}

// worldMap is the small map of the Activity page: the land outline and a dot per place.
type worldMap struct {
	Land   template.HTML
	Places []mapPlace
}

// mapPlace is one dot: its SVG coordinates and the place's name.
type mapPlace struct {
	X, Y  string
	Label string
	Count int
}

// newWorldMap places the distinct locations of rows on the map (equirectangular, the
// projection of the embedded outline: x = (lon+180)*2, y = (90-lat)*2).
func newWorldMap(rows []projections.ActivityRow) worldMap {
	m := worldMap{Land: worldLand()}
	seen := map[string]int{}
	for _, r := range rows {
		l := r.Location
		if l == nil {
			continue
		}
		key := fmt.Sprintf("%.2f,%.2f", l.Latitude, l.Longitude)
		if i, ok := seen[key]; ok {
			m.Places[i].Count++
			continue
		}
		seen[key] = len(m.Places)
		m.Places = append(m.Places, mapPlace{
			X:     fmt.Sprintf("%.1f", (l.Longitude+180)*2),
			Y:     fmt.Sprintf("%.1f", (90-l.Latitude)*2),
			Label: locationText(l), Count: 1,
		})
	}
	return m
}
