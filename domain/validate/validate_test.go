package validate

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalizeEmail(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"  Ann.Lee@Example.COM ", "ann.lee@example.com", true},
		{"a+tag@sub.example.org", "a+tag@sub.example.org", true},
		{"", "", false},
		{"no-at-sign", "", false},
		{"two@@example.com", "", false},
		{"Ann <ann@example.com>", "", false},
		{"ann@exa mple.com", "", false},
		{"ann@example.com\n", "ann@example.com", true},
		{"ann\x00@example.com", "", false},
		{"@example.com", "", false},
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 186) + ".com", "", false}, // 255 bytes
		{strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com", strings.Repeat("a", 64) + "@" + strings.Repeat("b", 185) + ".com", true},
	} {
		got, err := Email(tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("Email(%q) = %q, %v", tc.in, got, err)
		}
		var ve *Error
		if err != nil && (!errors.As(err, &ve) || ve.Field != "email" || !errors.Is(err, ErrInvalidInput)) {
			t.Errorf("Email(%q) error %v is not an *Error on email", tc.in, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{" Ann ", "Ann", true},
		{"José-María", "José-María", true},
		{"李", "李", true},
		{"", "", false},
		{"   ", "", false},
		{strings.Repeat("é", 100), strings.Repeat("é", 100), true},
		{strings.Repeat("é", 101), "", false},
		{"Ann\tLee", "", false},
		{"Ann\u202eLee", "", false},
		{"\xff", "", false},
	} {
		got, err := Name("first_name", tc.in)
		if tc.ok != (err == nil) || got != tc.want {
			t.Errorf("Name(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func TestCountryList(t *testing.T) {
	if n := len(isoCountrySet); n != 249 {
		t.Fatalf("%d ISO 3166-1 alpha-2 codes, want 249", n)
	}
	for _, c := range []string{"CH", "DE", "US", "SS", "XK"} {
		if got := isISOCountry(c); got != (c != "XK") {
			t.Errorf("isISOCountry(%s) = %v", c, got)
		}
	}
}

func TestDeviceName(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"  YubiKey 5 ", "YubiKey 5", true},
		{strings.Repeat("é", MaxDeviceName), strings.Repeat("é", MaxDeviceName), true},
		{strings.Repeat("é", MaxDeviceName+1), "", false},
		{"   ", "", false},
		{"phone\x07", "", false},
	} {
		got, err := DeviceName(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("DeviceName(%q) = %q, %v", tc.in, got, err)
		}
	}
}
