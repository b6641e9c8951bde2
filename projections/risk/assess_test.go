package risk

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/geoip"
	"github.com/vigil-auth/vigil/projections"
)

var (
	london   = &geoip.Location{CountryCode: "GB", Latitude: 51.5142, Longitude: -0.0931, AccuracyRadiusKM: 10}
	paris    = &geoip.Location{CountryCode: "FR", Latitude: 48.8566, Longitude: 2.3522, AccuracyRadiusKM: 50}
	saoPaulo = &geoip.Location{CountryCode: "BR", Latitude: -23.5475, Longitude: -46.6361, AccuracyRadiusKM: 20}
	noCoords = &geoip.Location{CountryCode: "SE"} // a Country database: no coordinates
	t0       = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

func signIn(loc *geoip.Location, at time.Time, device string) projections.SignInRecord {
	return projections.SignInRecord{SessionID: "s", EventID: "e", Time: at, Device: device, Location: loc}
}

func TestDistance(t *testing.T) {
	// London to Paris is about 344 km; to São Paulo about 9,490 km.
	if d := DistanceKM(london.Latitude, london.Longitude, paris.Latitude, paris.Longitude); math.Abs(d-344) > 3 {
		t.Errorf("London-Paris %.0f km", d)
	}
	if d := DistanceKM(london.Latitude, london.Longitude, saoPaulo.Latitude, saoPaulo.Longitude); math.Abs(d-9490) > 30 {
		t.Errorf("London-São Paulo %.0f km", d)
	}
}

func TestAssess(t *testing.T) {
	hist := projections.SignInHistory{Devices: []string{"Firefox on Linux"}, Countries: []string{"GB"}}
	prev := signIn(london, t0, "Firefox on Linux")
	withPrev := hist
	withPrev.Previous = &prev
	for _, tc := range []struct {
		name  string
		cur   projections.SignInRecord
		h     projections.SignInHistory
		want  []string
		speed int64
	}{
		{"the known device and place", signIn(london, t0.Add(time.Minute), "Firefox on Linux"), withPrev, nil, 0},
		{"a new device", signIn(london, t0.Add(time.Minute), "Chrome on macOS"), withPrev, []string{domain.SignalNewDevice}, 0},
		{"São Paulo a minute later", signIn(saoPaulo, t0.Add(time.Minute), "Firefox on Linux"), withPrev,
			[]string{domain.SignalNewCountry, domain.SignalImpossibleTravel}, 567_600},
		{"São Paulo a day later: a new country only", signIn(saoPaulo, t0.Add(24*time.Hour), "Firefox on Linux"), withPrev,
			[]string{domain.SignalNewCountry}, 394},
		// 344 km less 60 km of radii in 16 minutes: 1,065 km/h.
		{"Paris 16 minutes later", signIn(paris, t0.Add(16*time.Minute), "Firefox on Linux"), withPrev,
			[]string{domain.SignalNewCountry, domain.SignalImpossibleTravel}, 1065},
		// 284 km in 18 minutes: 947 km/h, a plane.
		{"Paris 18 minutes later", signIn(paris, t0.Add(18*time.Minute), "Firefox on Linux"), withPrev,
			[]string{domain.SignalNewCountry}, 947},
		{"an unknown location", signIn(nil, t0.Add(time.Second), "Firefox on Linux"), withPrev, nil, 0},
		{"no coordinates", signIn(noCoords, t0.Add(time.Second), "Firefox on Linux"), withPrev, []string{domain.SignalNewCountry}, 0},
		{"no previous located sign-in", signIn(saoPaulo, t0.Add(time.Second), "Firefox on Linux"), hist, []string{domain.SignalNewCountry}, 0},
		{"no known country", signIn(saoPaulo, t0.Add(time.Second), "Firefox on Linux"),
			projections.SignInHistory{Devices: []string{"Firefox on Linux"}}, nil, 0},
		{"the same instant, apart", signIn(saoPaulo, t0, "Firefox on Linux"), withPrev,
			[]string{domain.SignalNewCountry, domain.SignalImpossibleTravel}, 34_056_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Assess(tc.cur, tc.h, Rules{})
			if !slices.Equal(got.Signals, tc.want) && !(len(got.Signals) == 0 && len(tc.want) == 0) {
				t.Errorf("signals %v, want %v", got.Signals, tc.want)
			}
			if tc.speed != 0 && math.Abs(float64(got.SpeedKMH-tc.speed)) > float64(tc.speed)/100 {
				t.Errorf("speed %d, want about %d", got.SpeedKMH, tc.speed)
			}
			if got.SessionID != "s" || got.LoginEventID != "e" || got.Device != tc.cur.Device {
				t.Errorf("event %+v", got)
			}
		})
	}
}
