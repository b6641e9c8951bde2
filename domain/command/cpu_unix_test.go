//go:build unix

package command_test

import (
	"syscall"
	"testing"
	"time"
)

// processCPU is the CPU time (user and system) the process has used so far. On a shared
// machine the CPU time per sign-in moves far less with other load than the rate does: it is
// the cost of a sign-in, where the rate is also the share of the cores this process got.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
