package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestServerCarriesNoTestHelpers: the server binary does not link the test helper
// geoip/geoiptest nor mmdbwriter, which writes mmdb files, nor the test SMTP server
// (eventstore/forward/mail/mailtest, go-smtp); the development tools that need them are
// cmd/vigil-dev.
func TestServerCarriesNoTestHelpers(t *testing.T) {
	goCmd := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goCmd); err != nil {
		if goCmd, err = exec.LookPath("go"); err != nil {
			t.Skip("no go command (neither in runtime.GOROOT()/bin nor on PATH) to list the dependencies with")
		}
	}
	out, err := exec.Command(goCmd, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	if len(deps) < 50 || !strings.Contains(string(out), "github.com/vigil-auth/vigil/cmd/vigil/app") {
		t.Fatalf("go list -deps listed too little to judge (%d packages):\n%s", len(deps), out)
	}
	for _, p := range deps {
		if p == "github.com/vigil-auth/vigil/geoip/geoiptest" || p == "github.com/maxmind/mmdbwriter" || strings.HasPrefix(p, "github.com/maxmind/mmdbwriter/") ||
			p == "github.com/vigil-auth/vigil/eventstore/forward/mail/mailtest" || strings.HasPrefix(p, "github.com/emersion/go-smtp") {
			t.Errorf("the server binary depends on %s (a development or test helper; it belongs to cmd/vigil-dev)", p)
		}
	}
}
