package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/handlers/web"
	"github.com/vigil-auth/vigil/projections"
)

// The security team's views of issue 15 (roles auditor and admin): a filterable list of the
// sign-in risk signals (SignInRiskDetected) and "this wasn't me" reports
// (SuspiciousActivityReported), and an overview with small charts drawn as SVG on the
// server (no script): sign-ins and failures per day, signals per day, and the share of
// accounts with two-factor authentication.

// riskReads is what these pages read (*projections.DB has it).
type riskReads interface {
	RiskRecords(ctx context.Context, f projections.RiskFilter) ([]projections.ActivityRow, string, error)
	DailyCounts(ctx context.Context, from, to time.Time) ([]projections.DayCounts, error)
	TwoFactorShare(ctx context.Context) (accounts, withTwoFactor int, err error)
}

// signalsData is the list page's data; Rows, Who, First, Older and NotMe are what the
// shared activity table reads.
type signalsData struct {
	Rows         []projections.ActivityRow
	Who          map[string]string
	First, Older string
	// NotMe is always false: the team does not report sign-ins for their holders.
	NotMe   bool
	Signals []signalChoice
}

// signalChoice is one option of the signal filter.
type signalChoice struct{ Value, Label string }

var signalChoices = []signalChoice{
	{domain.SignalNewDevice, projections.SignalName(domain.SignalNewDevice)},
	{domain.SignalNewCountry, projections.SignalName(domain.SignalNewCountry)},
	{domain.SignalImpossibleTravel, projections.SignalName(domain.SignalImpossibleTravel)},
}

// portalSignalsLimit is the page size of the list.
const portalSignalsLimit = 50

func (p *Portal) riskReads(c *gin.Context) (riskReads, bool) {
	reads, ok := p.api.Reads.(riskReads)
	if !ok {
		p.errorPage(c, http.StatusServiceUnavailable, "The read models are not available.")
	}
	return reads, ok
}

func (p *Portal) auditSignalsPage(c *gin.Context) {
	if !p.waitMinPosition(c) {
		return
	}
	reads, ok := p.riskReads(c)
	if !ok {
		return
	}
	form := map[string]string{"kind": c.Query("kind"), "signal": c.Query("signal"), "account": c.Query("account"),
		"from": c.Query("from"), "to": c.Query("to")}
	f := projections.RiskFilter{Kind: form["kind"], Signal: form["signal"], Limit: portalSignalsLimit, Cursor: c.Query("cursor")}
	var errs []error
	switch f.Kind {
	case "", projections.RiskKindSignal, projections.RiskKindReport:
	default:
		errs = append(errs, &domain.ValidationError{Field: "kind", Reason: "Choose signals or reports."})
	}
	if f.Signal != "" {
		known := false
		for _, s := range signalChoices {
			known = known || s.Value == f.Signal
		}
		switch {
		case !known:
			errs = append(errs, &domain.ValidationError{Field: "signal", Reason: "Choose a signal from the list."})
		case f.Kind == projections.RiskKindReport:
			errs = append(errs, &domain.ValidationError{Field: "signal", Reason: "Reports have no signals: choose signals or any kind."})
		}
	}
	var err error
	if f.AccountID, err = web.IdParam(c, "account"); err != nil {
		errs = append(errs, &domain.ValidationError{Field: "account", Reason: "This is not an account id."})
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
	if !f.From.IsZero() && !f.To.IsZero() && f.From.After(f.To) {
		errs = append(errs, &domain.ValidationError{Field: "to", Reason: "The end must not be before the start."})
	}
	if len(f.Cursor) > web.MaxCursor {
		errs = append(errs, &domain.ValidationError{Field: "cursor", Reason: "This page link is broken; start from the newest entries."})
	}
	pg := pageData{Title: "Risk signals and reports", Nav: "audit", Form: form}
	d := signalsData{Signals: signalChoices}
	status := http.StatusOK
	ferr := errors.Join(errs...)
	if ferr == nil {
		rows, next, err := reads.RiskRecords(c.Request.Context(), f)
		switch {
		case errors.Is(err, projections.ErrBadCursor):
			ferr = &domain.ValidationError{Field: "cursor", Reason: "This page link is broken; start from the newest entries."}
		case err != nil:
			p.fail(c, err, "/audit/signals")
			return
		default:
			d.Rows = rows
			q := url.Values{}
			for k, v := range form {
				if v != "" {
					q.Set(k, v)
				}
			}
			if f.Cursor != "" {
				d.First = "/audit/signals?" + q.Encode()
			}
			if next != "" {
				q.Set("cursor", next)
				d.Older = "/audit/signals?" + q.Encode()
			}
		}
	}
	if ferr != nil {
		fields, msg, st := fieldErrors(ferr)
		pg.Errors, pg.Error, status = fields, msg, st
	}
	pg.Data = d
	p.render(c, status, "audit_signals", pg)
}

// overviewData is the overview page's data.
type overviewData struct {
	Days                   int
	DayChoices             []int
	SignIns, Failures      int
	Signals, Reports       int
	Accounts, TwoFactor    int
	TwoFactorPercent       int
	SignInChart            template.HTML
	SignalChart            template.HTML
	TwoFactorChart         template.HTML
	From, To               string
	SignalsLink, AuditLink string
}

var overviewDayChoices = []int{7, 14, 30, 90}

func (p *Portal) auditOverviewPage(c *gin.Context) {
	if !p.waitMinPosition(c) {
		return
	}
	reads, ok := p.riskReads(c)
	if !ok {
		return
	}
	pg := pageData{Title: "Security overview", Nav: "audit", Form: map[string]string{"days": c.Query("days")}}
	days := 14
	status := http.StatusOK
	if raw := c.Query("days"); raw != "" {
		n, err := strconv.Atoi(raw)
		valid := err == nil
		if valid {
			valid = false
			for _, d := range overviewDayChoices {
				valid = valid || d == n
			}
		}
		if !valid {
			pg.Errors, pg.Error, status = map[string]string{"days": "Choose 7, 14, 30 or 90 days."}, "Check the period.", http.StatusBadRequest
		} else {
			days = n
		}
	}
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	to := now().UTC()
	from := to.Add(-time.Duration(days-1) * 24 * time.Hour)
	ctx := c.Request.Context()
	counts, err := reads.DailyCounts(ctx, from, to)
	if err != nil {
		p.fail(c, err, "/audit")
		return
	}
	accounts, twoFA, err := reads.TwoFactorShare(ctx)
	if err != nil {
		p.fail(c, err, "/audit")
		return
	}
	d := overviewData{Days: days, DayChoices: overviewDayChoices, Accounts: accounts, TwoFactor: twoFA,
		From: from.Format(portalDate), To: to.Format(portalDate)}
	for _, dc := range counts {
		d.SignIns += dc.SignIns
		d.Failures += dc.Failures
		d.Signals += dc.Signals
		d.Reports += dc.Reports
	}
	if accounts > 0 {
		d.TwoFactorPercent = (twoFA*100 + accounts/2) / accounts
	}
	d.SignInChart = barChart("Sign-ins and failed sign-ins per day", counts, []series{
		{"Sign-ins", "bar-signins", func(dc projections.DayCounts) int { return dc.SignIns }},
		{"Failed sign-ins", "bar-failures", func(dc projections.DayCounts) int { return dc.Failures }},
	})
	d.SignalChart = barChart("Risk signals and reports per day", counts, []series{
		{"Risk signals", "bar-signals", func(dc projections.DayCounts) int { return dc.Signals }},
		{"“This wasn't me” reports", "bar-reports", func(dc projections.DayCounts) int { return dc.Reports }},
	})
	d.TwoFactorChart = shareChart("Accounts with two-factor authentication", twoFA, accounts)
	q := url.Values{"from": {d.From}, "to": {d.To}}
	d.SignalsLink = "/audit/signals?" + q.Encode()
	pg.Data = d
	p.render(c, status, "audit_overview", pg)
}

// series is one bar of each day in a chart.
type series struct {
	Label, Class string
	Value        func(projections.DayCounts) int
}

// Chart geometry (SVG user units; the image scales to its box).
const (
	chartW, chartH = 720, 220
	chartLeft      = 44
	chartBottom    = 28
	chartTop       = 12
)

// barChart draws grouped bars per day with a y axis, day labels and a legend; every bar has
// a <title> with its day and value (shown on hover, read by screen readers). The image has
// role="img" and an aria-label that says the totals.
func barChart(title string, days []projections.DayCounts, ss []series) template.HTML {
	maxV := 0
	totals := make([]int, len(ss))
	for _, dc := range days {
		for i, s := range ss {
			v := s.Value(dc)
			maxV = max(maxV, v)
			totals[i] += v
		}
	}
	top := niceCeil(maxV)
	var b strings.Builder
	label := title + ": "
	for i, s := range ss {
		if i > 0 {
			label += ", "
		}
		label += fmt.Sprintf("%s %d in total", s.Label, totals[i])
	}
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %d %d" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartW, chartH+24, html.EscapeString(label))
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(title))
	plotH := float64(chartH - chartBottom - chartTop)
	baseY := float64(chartH - chartBottom)
	// Grid lines at 0, half and the top.
	for _, frac := range []float64{0, 0.5, 1} {
		y := baseY - frac*plotH
		v := int(float64(top) * frac)
		fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f"/>`, chartLeft, y, chartW, y)
		fmt.Fprintf(&b, `<text class="axis" x="%d" y="%.1f" text-anchor="end">%d</text>`, chartLeft-6, y+4, v)
	}
	n := max(len(days), 1)
	slot := float64(chartW-chartLeft) / float64(n)
	barW := slot * 0.8 / float64(len(ss))
	every := (n + 9) / 10 // at most about ten day labels
	for i, dc := range days {
		x0 := float64(chartLeft) + float64(i)*slot + slot*0.1
		for j, s := range ss {
			v := s.Value(dc)
			h := 0.0
			if top > 0 {
				h = float64(v) / float64(top) * plotH
			}
			fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s %s: %d</title></rect>`,
				s.Class, x0+float64(j)*barW, baseY-h, barW, h, dc.Day.Format("2 Jan"), html.EscapeString(s.Label), v)
		}
		if i%every == 0 {
			fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%d" text-anchor="middle">%s</text>`,
				float64(chartLeft)+float64(i)*slot+slot/2, chartH-chartBottom+16, dc.Day.Format("2 Jan"))
		}
	}
	// Legend.
	x := chartLeft
	for _, s := range ss {
		fmt.Fprintf(&b, `<rect class="%s" x="%d" y="%d" width="12" height="12"/><text class="legend" x="%d" y="%d">%s</text>`,
			s.Class, x, chartH+8, x+16, chartH+18, html.EscapeString(s.Label))
		x += 40 + 8*len([]rune(s.Label))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers and escaped labels only
}

// shareChart draws one horizontal bar split into the share with two-factor authentication
// and the rest.
func shareChart(title string, part, whole int) template.HTML {
	w := 0.0
	if whole > 0 {
		w = float64(part) / float64(whole) * (chartW - 2)
	}
	pct := 0
	if whole > 0 {
		pct = (part*100 + whole/2) / whole
	}
	label := fmt.Sprintf("%s: %d of %d accounts (%d%%)", title, part, whole, pct)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart share" viewBox="0 0 %d 40" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		chartW, html.EscapeString(label))
	fmt.Fprintf(&b, `<title>%s</title>`, html.EscapeString(label))
	fmt.Fprintf(&b, `<rect class="bar-rest" x="1" y="4" width="%d" height="28"/>`, chartW-2)
	fmt.Fprintf(&b, `<rect class="bar-twofactor" x="1" y="4" width="%.1f" height="28"/>`, w)
	fmt.Fprintf(&b, `<text class="share-label" x="10" y="23">%d%%</text>`, pct)
	b.WriteString(`</svg>`)
	return template.HTML(b.String()) //nolint:gosec // numbers and escaped labels only
}

// niceCeil rounds v up to 2, 4, 6, 8 or 10 times a power of ten (at least 2), the top of an
// axis whose middle line is then a whole number too.
func niceCeil(v int) int {
	if v <= 2 {
		return 2
	}
	for p := 1; ; p *= 10 {
		for _, m := range []int{2, 4, 6, 8, 10} {
			if m*p >= v {
				return m * p
			}
		}
	}
}

// rowSignalNames are the risk signals an activity row carries, in words ("new device").
func rowSignalNames(details json.RawMessage) []string {
	sigs := projections.RowSignals(details)
	out := make([]string, len(sigs))
	for i, s := range sigs {
		out[i] = projections.SignalName(s)
	}
	return out
}
