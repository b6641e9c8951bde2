package mail

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	htmltemplate "html/template"
	"io/fs"
	"strings"
	texttemplate "text/template"
	"time"
)

// The bodies are two embedded templates (text and HTML) filled from a per-locale catalog of
// strings (locales/<lang>.json); each string of a catalog is itself a small text/template
// over the mail's values ({{.Email}}, {{.Until}}...). The HTML template escapes everything the
// catalog and the values give it.

//go:embed templates/*.tmpl locales/*.json
var assets embed.FS

// DefaultLocale is used when the account's profile names no locale the catalogs have.
const DefaultLocale = "en"

// catalog is one locale's strings.
type catalog struct {
	Greeting        string            `json:"greeting"`      // with {{.Name}}
	GreetingAnon    string            `json:"greeting_anon"` // without a name
	Labels          map[string]string `json:"labels"`        // when, where, device, ip
	UnknownLocation string            `json:"unknown_location"`
	UnknownDevice   string            `json:"unknown_device"`
	UnknownIP       string            `json:"unknown_ip"`
	DeviceFormat    string            `json:"device_format"` // {{.Browser}}, {{.OS}}
	DateFormat      string            `json:"date_format"`   // {{.Weekday}} {{.Day}} {{.Month}} {{.Year}} {{.Time}}
	Weekdays        []string          `json:"weekdays"`      // Sunday first
	Months          []string          `json:"months"`        // January first
	DetailsIntro    string            `json:"details_intro"`
	LabelSeparator  string            `json:"label_separator"` // ": " (French ": " with a space before)
	NotMeIntro      string            `json:"not_me_intro"`
	NotMeLabel      string            `json:"not_me_label"`
	NotMeNote       string            `json:"not_me_note"`
	Footer          string            `json:"footer"`
	Signals         map[string]string `json:"signals"` // one line per risk signal
	Mails           map[string]struct {
		Subject string   `json:"subject"`
		Intro   []string `json:"intro"`
		Action  string   `json:"action"`
		Note    string   `json:"note"`
	} `json:"mails"`
}

// renderer holds the parsed templates and catalogs.
type renderer struct {
	text     *texttemplate.Template
	html     *htmltemplate.Template
	catalogs map[string]*catalog
}

func newRenderer() (*renderer, error) {
	r := &renderer{catalogs: map[string]*catalog{}}
	var err error
	if r.text, err = texttemplate.ParseFS(assets, "templates/mail.txt.tmpl"); err != nil {
		return nil, fmt.Errorf("mail: templates: %w", err)
	}
	if r.html, err = htmltemplate.ParseFS(assets, "templates/mail.html.tmpl"); err != nil {
		return nil, fmt.Errorf("mail: templates: %w", err)
	}
	files, err := fs.Glob(assets, "locales/*.json")
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		raw, err := assets.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var c catalog
		if err := json.Unmarshal(raw, &c); err != nil {
			return nil, fmt.Errorf("mail: %s: %w", f, err)
		}
		r.catalogs[strings.TrimSuffix(strings.TrimPrefix(f, "locales/"), ".json")] = &c
	}
	if r.catalogs[DefaultLocale] == nil {
		return nil, fmt.Errorf("mail: no %s catalog", DefaultLocale)
	}
	return r, nil
}

// lang picks the catalog for a BCP 47 tag: its language ("fr-CA" -> "fr"), else English.
func (r *renderer) lang(tag string) string {
	base, _, _ := strings.Cut(strings.ToLower(strings.TrimSpace(tag)), "-")
	if _, ok := r.catalogs[base]; ok {
		return base
	}
	return DefaultLocale
}

// content is what a mail says, before rendering.
type content struct {
	Kind   string
	Locale string
	Name   string         // the recipient's first name, "" for none
	Values map[string]any // for the catalog's strings
	// Lines are extra lines after the intro (the signals of a risky sign-in), already
	// localised by the caller through line.
	Lines []string
	// Action is the verification or reset link; NotMe the "this wasn't me" link ("" for
	// none).
	Action, NotMe string
	// Details: the event's time, place, device and IP (security mails and reset requests).
	Details *details
}

type details struct {
	At time.Time
	// City (English, "" when unknown), Country (English) and CountryCode of the IP; all ""
	// when it was not located.
	City, Country, CountryCode string
	Browser                    string
	OS                         string
	Fallback                   string // a description of the agent when browser and OS are unknown
	IP                         string
}

// view is the templates' data.
type view struct {
	Lang, Subject, Greeting string
	Intro, Lines            []string
	DetailsIntro            string
	Details                 []row
	Sep                     string // between a label and its value in the text body
	Action                  *link
	NotMe                   *link
	Footer                  string
}

type row struct{ Label, Value string }

type link struct{ Intro, Label, URL, Note string }

// render fills the templates: subject, text and HTML body.
func (r *renderer) render(c content) (subject, text, html string, err error) {
	lang := r.lang(c.Locale)
	cat := r.catalogs[lang]
	m, ok := cat.Mails[c.Kind]
	if !ok || m.Subject == "" {
		m, ok = r.catalogs[DefaultLocale].Mails[c.Kind]
		if !ok {
			return "", "", "", fmt.Errorf("mail: no strings for %q", c.Kind)
		}
	}
	vals := c.Values
	if vals == nil {
		vals = map[string]any{}
	}
	s := func(tmpl string) string {
		out, e := fill(tmpl, vals)
		if e != nil && err == nil {
			err = e
		}
		return out
	}
	v := view{Lang: lang, Subject: s(m.Subject), Footer: cat.Footer, Lines: c.Lines, Sep: or(cat.LabelSeparator, ": ")}
	if c.Name != "" {
		v.Greeting, _ = fill(cat.Greeting, map[string]any{"Name": c.Name})
	} else {
		v.Greeting = cat.GreetingAnon
	}
	for _, p := range m.Intro {
		v.Intro = append(v.Intro, s(p))
	}
	if d := c.Details; d != nil {
		v.DetailsIntro = cat.DetailsIntro
		v.Details = []row{
			{cat.Labels["when"], r.when(cat, d.At)},
			{cat.Labels["where"], or(d.where(lang), cat.UnknownLocation)},
			{cat.Labels["device"], r.device(cat, d)},
			{cat.Labels["ip"], or(d.IP, cat.UnknownIP)},
		}
	}
	if c.Action != "" {
		v.Action = &link{Label: s(m.Action), URL: c.Action, Note: s(m.Note)}
	}
	if c.NotMe != "" {
		v.NotMe = &link{Intro: cat.NotMeIntro, Label: cat.NotMeLabel, URL: c.NotMe, Note: cat.NotMeNote}
	}
	if err != nil {
		return "", "", "", err
	}
	var tb, hb bytes.Buffer
	if err := r.text.Execute(&tb, v); err != nil {
		return "", "", "", fmt.Errorf("mail: text body: %w", err)
	}
	if err := r.html.Execute(&hb, v); err != nil {
		return "", "", "", fmt.Errorf("mail: html body: %w", err)
	}
	return v.Subject, tb.String(), hb.String(), nil
}

// line localises one extra line (a risk signal) of kind key.
func (r *renderer) line(locale, key string, vals map[string]any) string {
	cat := r.catalogs[r.lang(locale)]
	t, ok := cat.Signals[key]
	if !ok {
		t = r.catalogs[DefaultLocale].Signals[key]
	}
	out, _ := fill(t, vals)
	return out
}

// when is the time, readable in the locale and exact: "Wednesday 2 December 2026, 12:13:35
// UTC (2026-12-02T12:13:35Z)".
func (r *renderer) when(cat *catalog, t time.Time) string {
	t = t.UTC()
	vals := map[string]any{
		"Weekday": pick(cat.Weekdays, int(t.Weekday()), t.Weekday().String()),
		"Day":     t.Day(),
		"Month":   pick(cat.Months, int(t.Month())-1, t.Month().String()),
		"Year":    t.Year(),
		"Time":    t.Format("15:04:05"),
	}
	s, err := fill(cat.DateFormat, vals)
	if err != nil || s == "" {
		s = t.Format("Monday 2 January 2006, 15:04:05 UTC")
	}
	return s + " (" + t.Format(time.RFC3339) + ")"
}

func (r *renderer) device(cat *catalog, d *details) string {
	switch {
	case d.Browser != "" && d.OS != "":
		s, err := fill(cat.DeviceFormat, map[string]any{"Browser": d.Browser, "OS": d.OS})
		if err == nil {
			return s
		}
		return d.Browser + ", " + d.OS
	case d.Browser != "":
		return d.Browser
	case d.OS != "":
		return d.OS
	case d.Fallback != "":
		return d.Fallback
	}
	return cat.UnknownDevice
}

// where is "City, Country" with the country's name in lang.
func (d *details) where(lang string) string {
	country := d.Country
	if d.CountryCode != "" {
		if n := countryName(lang, d.CountryCode); n != "?" && n != d.CountryCode {
			country = n
		}
	}
	switch {
	case country == "":
		return ""
	case d.City != "":
		return d.City + ", " + country
	}
	return country
}

func pick(xs []string, i int, def string) string {
	if i >= 0 && i < len(xs) && xs[i] != "" {
		return xs[i]
	}
	return def
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// fill executes one catalog string as a text/template over vals (a missing value is an
// error: a catalog must not silently drop a name or a date).
func fill(tmpl string, vals map[string]any) (string, error) {
	if !strings.Contains(tmpl, "{{") {
		return tmpl, nil
	}
	t, err := texttemplate.New("").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", fmt.Errorf("mail: catalog string %q: %w", tmpl, err)
	}
	var b strings.Builder
	if err := t.Execute(&b, vals); err != nil {
		return "", fmt.Errorf("mail: catalog string %q: %w", tmpl, err)
	}
	return b.String(), nil
}
