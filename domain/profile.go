package domain

import "github.com/vigil-auth/vigil/domain/validate"

// Profile is an account's optional profile. Every field is personal data, free text bounded
// to validate.MaxProfileRunes characters without control characters, empty when unset;
// Telephone is E.164-like (see ProfilePatch), Country an ISO 3166-1 alpha-2 code
// (upper-case) and Locale a BCP 47 tag in canonical form.
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

// apply returns p with patch applied and every changed field validated.
func (p Profile) apply(patch ProfilePatch) (Profile, error) {
	text := func(field string, dst *string, v *string) error {
		if v == nil {
			return nil
		}
		t, err := validate.Text("profile."+field, *v, validate.MaxProfileRunes, false)
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
		special(&p.Telephone, patch.Telephone, validate.Telephone),
		text("street", &p.Street, patch.Street),
		text("city", &p.City, patch.City),
		text("state", &p.State, patch.State),
		text("postal_code", &p.PostalCode, patch.PostalCode),
		special(&p.Country, patch.Country, validate.Country),
		text("relationship", &p.Relationship, patch.Relationship),
		special(&p.Locale, patch.Locale, validate.Locale),
	} {
		if err != nil {
			return Profile{}, err
		}
	}
	return p, nil
}
