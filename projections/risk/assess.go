// Package risk is the sign-in risk detector of API.md's "Mail, recovery and account
// protection": after each successful sign-in, asynchronously (it follows the log, so the
// sign-in itself does not wait for it), it compares the sign-in with the account's history as
// it stood before it (the projections.SignIns read model) and, when anything stands out,
// records SignInRiskDetected through command.Service.RecordSignInRisk.
//
// The signals:
//   - new_device: the sign-in's browser and OS (projections.DeviceFamily) were not seen in
//     the account's registration nor in its sign-ins of the last 90 days;
//   - new_country: the sign-in is located in a country not seen in the registration nor in
//     the sign-ins of the last 90 days, when the history has at least one located entry;
//   - impossible_travel: the speed needed from the previous located sign-in, after
//     subtracting both locations' accuracy radius from the distance, is above 1,000 km/h;
//     never when either location (or its coordinates) is unknown.
package risk

import (
	"math"
	"slices"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/projections"
)

// Defaults of the rules.
const (
	// DefaultWindow is how far back sign-ins count as the account's known devices and
	// countries (the registration always counts).
	DefaultWindow = 90 * 24 * time.Hour
	// DefaultMaxSpeedKMH is the fastest plausible travel between two sign-ins.
	DefaultMaxSpeedKMH = 1000
)

// Rules are the thresholds of Assess; the zero value uses the defaults.
type Rules struct {
	Window      time.Duration
	MaxSpeedKMH float64
}

func (r Rules) filled() Rules {
	if r.Window <= 0 {
		r.Window = DefaultWindow
	}
	if r.MaxSpeedKMH <= 0 {
		r.MaxSpeedKMH = DefaultMaxSpeedKMH
	}
	return r
}

// Assess compares the sign-in cur with the account's history before it (h, whose window
// started at cur.Time minus Rules.Window) and returns the SignInRiskDetected to record:
// Signals is empty when nothing stands out. Session, login event, device, countries and
// speed are filled from cur and h; At is left for the recorder (the time of the detection).
// It is pure.
func Assess(cur projections.SignInRecord, h projections.SignInHistory, rules Rules) domain.SignInRiskDetected {
	rules = rules.filled()
	ev := domain.SignInRiskDetected{SessionID: cur.SessionID, LoginEventID: cur.EventID, Device: cur.Device,
		Signals: []string{}}
	if !slices.Contains(h.Devices, cur.Device) {
		ev.Signals = append(ev.Signals, domain.SignalNewDevice)
	}
	if cur.Location != nil {
		ev.Country = cur.Location.CountryCode
	}
	if ev.Country != "" && len(h.Countries) > 0 && !slices.Contains(h.Countries, ev.Country) {
		ev.Signals = append(ev.Signals, domain.SignalNewCountry)
	}
	if prev := h.Previous; prev != nil {
		ev.PreviousCountry = prev.Location.CountryCode
		if speed, ok := travelSpeed(*prev, cur); ok {
			ev.SpeedKMH = int64(math.Round(speed))
			if speed > rules.MaxSpeedKMH {
				ev.Signals = append(ev.Signals, domain.SignalImpossibleTravel)
			}
		}
	}
	return ev
}

// travelSpeed is the speed (km/h) needed from prev to cur: the great-circle distance less
// both accuracy radii (at least 0) over the time between them. ok is false when either has
// no coordinates. Times closer than a second count as a second apart.
func travelSpeed(prev, cur projections.SignInRecord) (float64, bool) {
	a, b := prev.Location, cur.Location
	if a == nil || b == nil || (a.Latitude == 0 && a.Longitude == 0) || (b.Latitude == 0 && b.Longitude == 0) {
		return 0, false
	}
	d := DistanceKM(a.Latitude, a.Longitude, b.Latitude, b.Longitude) -
		float64(a.AccuracyRadiusKM) - float64(b.AccuracyRadiusKM)
	if d <= 0 {
		return 0, true
	}
	hours := max(cur.Time.Sub(prev.Time), time.Second).Hours()
	return d / hours, true
}

// earthRadiusKM is the mean radius of the Earth.
const earthRadiusKM = 6371.0088

// DistanceKM is the great-circle (haversine) distance between two points in decimal
// degrees, in kilometres.
func DistanceKM(lat1, lon1, lat2, lon2 float64) float64 {
	rad := math.Pi / 180
	dLat, dLon := (lat2-lat1)*rad, (lon2-lon1)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(lat1*rad)*math.Cos(lat2*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * earthRadiusKM * math.Asin(math.Min(1, math.Sqrt(h)))
}
