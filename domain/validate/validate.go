// Package validate holds the checks of free-text input shared by Vigil's commands: emails,
// names, bounded text without control characters, and the profile's telephone, country and
// locale. A refused input is an *Error naming the field, which wraps ErrInvalidInput
// (domain.ValidationError and domain.ErrInvalidInput are these).
//
// It depends on the standard library and x/text only, never on package domain: domain
// imports it.
package validate

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/language"
)

// Bounds of account and profile input.
const (
	MaxEmailLength    = 254 // bytes, RFC 5321's path limit
	MaxNameRunes      = 100
	MaxProfileRunes   = 200
	MaxTelephoneRunes = 32
	MaxWebhookURL     = 2048 // bytes
)

// ErrInvalidInput: the input failed validation. It is always wrapped in an *Error (or, for a
// new password, domain's *PasswordPolicyError) naming what was wrong.
var ErrInvalidInput = errors.New("invalid input")

// Error says which input field was refused and why. It wraps ErrInvalidInput. Field uses
// the API's snake_case names (email, first_name, profile.country, ...); Reason is a short
// English sentence safe to show to the user.
type Error struct {
	Field  string
	Reason string
}

// Error describes the field and the reason.
func (e *Error) Error() string {
	return fmt.Sprintf("invalid input: %s: %s", e.Field, e.Reason)
}

// Unwrap returns ErrInvalidInput.
func (e *Error) Unwrap() error { return ErrInvalidInput }

// Invalid returns the *Error of field, its reason formatted from format and args.
func Invalid(field, format string, args ...any) error {
	return &Error{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Email trims and lower-cases an email and checks it: at most 254 bytes, a bare
// address per net/mail (no display name, no comments), one "@" with a non-empty local part
// and domain. It returns the normalised form or an *Error for field "email".
func Email(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" {
		return "", Invalid("email", "is required")
	}
	if len(e) > MaxEmailLength {
		return "", Invalid("email", "must be at most %d characters", MaxEmailLength)
	}
	if !utf8.ValidString(e) || strings.ContainsFunc(e, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", Invalid("email", "must not contain spaces or control characters")
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Name != "" || addr.Address != e || strings.Count(e, "@") != 1 {
		return "", Invalid("email", "is not a valid email address")
	}
	local, domain, _ := strings.Cut(e, "@")
	if local == "" || domain == "" {
		return "", Invalid("email", "is not a valid email address")
	}
	return e, nil
}

// badTextRune: control characters and the bidirectional overrides that let text display
// differently from what it is.
func badTextRune(r rune) bool {
	return unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == utf8.RuneError
}

// MaxDeviceName bounds the names given to devices (TOTP devices and passkeys).
const MaxDeviceName = 64

// DeviceName trims a TOTP device or passkey name: 1..MaxDeviceName characters, no control
// characters.
func DeviceName(name string) (string, error) {
	return Text("name", name, MaxDeviceName, true)
}

// Text trims s and checks it is valid UTF-8 without control characters, of at most max
// runes and, when required, at least one.
func Text(field, s string, max int, required bool) (string, error) {
	if !utf8.ValidString(s) {
		return "", Invalid(field, "must be valid UTF-8 text")
	}
	t := strings.TrimSpace(s)
	n := utf8.RuneCountInString(t)
	if required && n == 0 {
		return "", Invalid(field, "is required")
	}
	if n > max {
		return "", Invalid(field, "must be at most %d characters", max)
	}
	if strings.ContainsFunc(t, badTextRune) {
		return "", Invalid(field, "must not contain control characters")
	}
	return t, nil
}

// Name checks a first or last name (field is "first_name" or "last_name"): trimmed,
// 1..100 characters, no control characters. It returns the trimmed name.
func Name(field, s string) (string, error) {
	return Text(field, s, MaxNameRunes, true)
}

var telephoneRE = regexp.MustCompile(`^\+?[0-9 ().\-]+$`)

// Telephone checks a telephone number: trimmed, at most MaxTelephoneRunes characters of "+",
// digits, spaces, dots, hyphens and parentheses, with 3 to 15 digits; "" is allowed.
func Telephone(s string) (string, error) {
	t, err := Text("profile.telephone", s, MaxTelephoneRunes, false)
	if err != nil || t == "" {
		return t, err
	}
	digits := 0
	for _, r := range t {
		if r >= '0' && r <= '9' {
			digits++
		}
	}
	if !telephoneRE.MatchString(t) || digits < 3 || digits > 15 {
		return "", Invalid("profile.telephone", "must be a telephone number such as +41 44 668 18 00")
	}
	return t, nil
}

// Country upper-cases an ISO 3166-1 alpha-2 country code and checks it is assigned; "" is
// allowed.
func Country(s string) (string, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return "", nil
	}
	if !isISOCountry(t) {
		return "", Invalid("profile.country", "must be an ISO 3166-1 alpha-2 country code such as CH")
	}
	return t, nil
}

// Locale checks a BCP 47 language tag and returns its canonical form ("en-us" -> "en-US");
// "" is allowed.
func Locale(s string) (string, error) {
	t, err := Text("profile.locale", s, 35, false)
	if err != nil || t == "" {
		return t, err
	}
	tag, perr := language.Parse(t)
	if perr != nil || tag == language.Und {
		return "", Invalid("profile.locale", "must be a BCP 47 language tag such as de-CH")
	}
	return tag.String(), nil
}

// isoCountries are the 249 officially assigned ISO 3166-1 alpha-2 codes.
const isoCountries = "" +
	"AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ " +
	"BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ " +
	"CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ " +
	"DE DJ DK DM DO DZ " +
	"EC EE EG EH ER ES ET " +
	"FI FJ FK FM FO FR " +
	"GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY " +
	"HK HM HN HR HT HU " +
	"ID IE IL IM IN IO IQ IR IS IT " +
	"JE JM JO JP " +
	"KE KG KH KI KM KN KP KR KW KY KZ " +
	"LA LB LC LI LK LR LS LT LU LV LY " +
	"MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ " +
	"NA NC NE NF NG NI NL NO NP NR NU NZ " +
	"OM " +
	"PA PE PF PG PH PK PL PM PN PR PS PT PW PY " +
	"QA " +
	"RE RO RS RU RW " +
	"SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ " +
	"TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ " +
	"UA UG UM US UY UZ " +
	"VA VC VE VG VI VN VU " +
	"WF WS " +
	"YE YT " +
	"ZA ZM ZW"

var isoCountrySet = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range strings.Fields(isoCountries) {
		m[c] = true
	}
	return m
}()

func isISOCountry(code string) bool { return isoCountrySet[code] }

// WebhookURL checks a webhook endpoint URL and returns it normalised: an absolute http or
// https URL with a host, no credentials (they would sit in the log in clear; receivers
// authenticate Vigil by the signature) and no fragment, at most MaxWebhookURL bytes. A
// refusal is an *Error of field "url".
func WebhookURL(raw string) (string, error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		return "", Invalid("url", "is required")
	}
	if len(raw) > MaxWebhookURL {
		return "", Invalid("url", "must be at most %d bytes", MaxWebhookURL)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", Invalid("url", "is not a URL")
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", Invalid("url", "must be an http or https URL")
	case u.Host == "" || u.Hostname() == "":
		return "", Invalid("url", "must name a host")
	case u.User != nil:
		return "", Invalid("url", "must not carry credentials")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return "", Invalid("url", "must not have a fragment")
	}
	return u.String(), nil
}
