package domain

import (
	"errors"
	"strings"
	"testing"
)

func ptr(s string) *string { return &s }

func TestProfilePatch(t *testing.T) {
	base := Profile{Title: "Dr", City: "Zürich"}
	for _, tc := range []struct {
		name  string
		patch ProfilePatch
		want  Profile
		field string // "" when accepted
	}{
		{"nothing", ProfilePatch{}, base, ""},
		{"clear title", ProfilePatch{Title: ptr("")}, Profile{City: "Zürich"}, ""},
		{"telephone", ProfilePatch{Telephone: ptr("+41 44 668 18 00")}, Profile{Title: "Dr", City: "Zürich", Telephone: "+41 44 668 18 00"}, ""},
		{"telephone letters", ProfilePatch{Telephone: ptr("+41 call me")}, Profile{}, "profile.telephone"},
		{"telephone too many digits", ProfilePatch{Telephone: ptr("+1234567890123456")}, Profile{}, "profile.telephone"},
		{"telephone too long", ProfilePatch{Telephone: ptr("+1 (2) 3 - 4 - 5 - 6 - 7 - 8 - 9 - 0")}, Profile{}, "profile.telephone"},
		{"country lower-case", ProfilePatch{Country: ptr("ch")}, Profile{Title: "Dr", City: "Zürich", Country: "CH"}, ""},
		{"country unknown", ProfilePatch{Country: ptr("XX")}, Profile{}, "profile.country"},
		{"country alpha-3", ProfilePatch{Country: ptr("CHE")}, Profile{}, "profile.country"},
		{"locale canonical", ProfilePatch{Locale: ptr("de-ch")}, Profile{Title: "Dr", City: "Zürich", Locale: "de-CH"}, ""},
		{"locale bad", ProfilePatch{Locale: ptr("not a locale")}, Profile{}, "profile.locale"},
		{"street bound", ProfilePatch{Street: ptr(strings.Repeat("x", 201))}, Profile{}, "profile.street"},
		{"street 200", ProfilePatch{Street: ptr(strings.Repeat("ü", 200))}, Profile{Title: "Dr", City: "Zürich", Street: strings.Repeat("ü", 200)}, ""},
		{"control char", ProfilePatch{Relationship: ptr("a\x07b")}, Profile{}, "profile.relationship"},
		{"all fields", ProfilePatch{Title: ptr("Ms"), Street: ptr("Main 1"), City: ptr("Bern"), State: ptr("BE"),
			PostalCode: ptr("3000"), Relationship: ptr("customer")},
			Profile{Title: "Ms", Street: "Main 1", City: "Bern", State: "BE", PostalCode: "3000", Relationship: "customer"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := base.apply(tc.patch)
			if tc.field == "" {
				if err != nil || got != tc.want {
					t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != tc.field {
				t.Fatalf("error %v, want a ValidationError on %s", err, tc.field)
			}
		})
	}
}
