package domain

import (
	"net/mail"
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
	MaxDeviceName     = 64
	MaxClientName     = 100
)

// Profile is an account's optional profile. Every field is personal data, free text bounded
// to MaxProfileRunes characters without control characters, empty when unset; Telephone is
// E.164-like (see ProfilePatch), Country an ISO 3166-1 alpha-2 code (upper-case) and Locale a
// BCP 47 tag in canonical form.
type Profile struct {
	Title        string `json:"title"`
	Telephone    string `json:"telephone"`
	Street       string `json:"street"`
	City         string `json:"city"`
	State        string `json:"state"`
	PostalCode   string `json:"postal_code"`
	Country      string `json:"country"`
	Relationship string `json:"relationship"` // relationship to the company
	Locale       string `json:"locale"`
}

// ProfilePatch changes the profile fields that are non-nil; an empty string clears a field.
// Values are trimmed; Telephone allows "+", digits, spaces, dots, hyphens and parentheses
// with 3 to 15 digits, at most 32 characters; Country is case-insensitive ISO 3166-1
// alpha-2; Locale is any well-formed BCP 47 tag (stored canonical: "en-us" -> "en-US").
type ProfilePatch struct {
	Title        *string
	Telephone    *string
	Street       *string
	City         *string
	State        *string
	PostalCode   *string
	Country      *string
	Relationship *string
	Locale       *string
}

// NormalizeEmail trims and lower-cases an email and checks it: at most 254 bytes, a bare
// address per net/mail (no display name, no comments), one "@" with a non-empty local part
// and domain. It returns the normalised form or a *ValidationError for field "email".
func NormalizeEmail(s string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" {
		return "", invalid("email", "is required")
	}
	if len(e) > MaxEmailLength {
		return "", invalid("email", "must be at most %d characters", MaxEmailLength)
	}
	if !utf8.ValidString(e) || strings.ContainsFunc(e, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", invalid("email", "must not contain spaces or control characters")
	}
	addr, err := mail.ParseAddress(e)
	if err != nil || addr.Name != "" || addr.Address != e || strings.Count(e, "@") != 1 {
		return "", invalid("email", "is not a valid email address")
	}
	local, domain, _ := strings.Cut(e, "@")
	if local == "" || domain == "" {
		return "", invalid("email", "is not a valid email address")
	}
	return e, nil
}

// badTextRune: control characters and the bidirectional overrides that let text display
// differently from what it is.
func badTextRune(r rune) bool {
	return unicode.IsControl(r) || (r >= 0x202A && r <= 0x202E) || (r >= 0x2066 && r <= 0x2069) || r == utf8.RuneError
}

// cleanText trims s and checks it is valid UTF-8 without control characters, of at most max
// runes and, when required, at least one.
func cleanText(field, s string, max int, required bool) (string, error) {
	if !utf8.ValidString(s) {
		return "", invalid(field, "must be valid UTF-8 text")
	}
	t := strings.TrimSpace(s)
	n := utf8.RuneCountInString(t)
	if required && n == 0 {
		return "", invalid(field, "is required")
	}
	if n > max {
		return "", invalid(field, "must be at most %d characters", max)
	}
	if strings.ContainsFunc(t, badTextRune) {
		return "", invalid(field, "must not contain control characters")
	}
	return t, nil
}

// ValidateName checks a first or last name (field is "first_name" or "last_name"): trimmed,
// 1..100 characters, no control characters. It returns the trimmed name.
func ValidateName(field, s string) (string, error) {
	return cleanText(field, s, MaxNameRunes, true)
}

var telephoneRE = regexp.MustCompile(`^\+?[0-9 ().\-]+$`)

func validateTelephone(s string) (string, error) {
	t, err := cleanText("profile.telephone", s, MaxTelephoneRunes, false)
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
		return "", invalid("profile.telephone", "must be a telephone number such as +41 44 668 18 00")
	}
	return t, nil
}

func validateCountry(s string) (string, error) {
	t := strings.ToUpper(strings.TrimSpace(s))
	if t == "" {
		return "", nil
	}
	if !isISOCountry(t) {
		return "", invalid("profile.country", "must be an ISO 3166-1 alpha-2 country code such as CH")
	}
	return t, nil
}

func validateLocale(s string) (string, error) {
	t, err := cleanText("profile.locale", s, 35, false)
	if err != nil || t == "" {
		return t, err
	}
	tag, perr := language.Parse(t)
	if perr != nil || tag == language.Und {
		return "", invalid("profile.locale", "must be a BCP 47 language tag such as de-CH")
	}
	return tag.String(), nil
}

// apply returns p with patch applied and every changed field validated.
func (p Profile) apply(patch ProfilePatch) (Profile, error) {
	text := func(field string, dst *string, v *string) error {
		if v == nil {
			return nil
		}
		t, err := cleanText("profile."+field, *v, MaxProfileRunes, false)
		if err != nil {
			return err
		}
		*dst = t
		return nil
	}
	special := func(dst *string, v *string, f func(string) (string, error)) error {
		if v == nil {
			return nil
		}
		t, err := f(*v)
		if err != nil {
			return err
		}
		*dst = t
		return nil
	}
	for _, err := range []error{
		text("title", &p.Title, patch.Title),
		special(&p.Telephone, patch.Telephone, validateTelephone),
		text("street", &p.Street, patch.Street),
		text("city", &p.City, patch.City),
		text("state", &p.State, patch.State),
		text("postal_code", &p.PostalCode, patch.PostalCode),
		special(&p.Country, patch.Country, validateCountry),
		text("relationship", &p.Relationship, patch.Relationship),
		special(&p.Locale, patch.Locale, validateLocale),
	} {
		if err != nil {
			return Profile{}, err
		}
	}
	return p, nil
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
