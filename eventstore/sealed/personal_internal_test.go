package sealed

import (
	"slices"
	"testing"

	"github.com/vigil-auth/vigil/domain"
)

// The personal members of an event come from the registry, and asking again (every append
// and every read asks) allocates nothing.
func TestRegistryPersonalIsCachedWithoutAllocating(t *testing.T) {
	got := RegistryPersonal(domain.EventAccountRegistered, 1)
	for _, m := range []string{"email", "first_name", "last_name"} {
		if !slices.Contains(got, m) {
			t.Errorf("personal members of AccountRegistered v1: %v, want %s among them", got, m)
		}
	}
	if slices.Contains(got, "account_id") || slices.Contains(got, "password_hash") {
		t.Errorf("personal members of AccountRegistered v1: %v", got)
	}
	if got := RegistryPersonal("NoSuchEvent", 1); got != nil {
		t.Errorf("an unknown type's personal members: %v", got)
	}
	typ := domain.EventAccountRegistered
	if n := testing.AllocsPerRun(100, func() { RegistryPersonal(typ, 1) }); n != 0 {
		t.Errorf("RegistryPersonal allocates %v times a lookup", n)
	}
}
