//go:build race

package testwait

// raceEnabled: this build has the race detector, whose instrumented code runs several times
// slower.
const raceEnabled = true
