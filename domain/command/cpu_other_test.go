//go:build !unix

package command_test

import (
	"testing"
	"time"
)

// processCPU is not measured here: the CPU metrics of the benchmarks are left out.
func processCPU(*testing.B) time.Duration { return 0 }
