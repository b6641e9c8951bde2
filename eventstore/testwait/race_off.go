//go:build !race

package testwait

// raceEnabled: this build has no race detector.
const raceEnabled = false
