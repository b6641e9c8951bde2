package sealed

import (
	"context"
	"sync"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/eventtype"
)

// personalCache holds the registry's personal members per event type and schema version:
// sealing asks on every append and read (a rebuild: a million times), so a lookup allocates
// nothing.
var personalCache sync.Map // personalKey -> []string

type personalKey struct {
	eventType     string
	schemaVersion int
}

// RegistryPersonal is the PersonalFunc of Vigil's events: the members the domain registry
// declares eventtype.FieldPersonal, looked up once per type and version.
func RegistryPersonal(eventType string, schemaVersion int) []string {
	k := personalKey{eventType, schemaVersion}
	if v, ok := personalCache.Load(k); ok {
		return v.([]string)
	}
	var out []string
	if d, ok := domain.Catalog().Fields(eventType, schemaVersion); ok {
		for _, m := range d.Keys() {
			if d.Class(m) == eventtype.FieldPersonal {
				out = append(out, m)
			}
		}
	}
	personalCache.Store(k, out)
	return out
}

// AccountKeys destroys an erased account's keys (command.DataKeys): its own, and the
// identifier keys of the emails it held (failed sign-ins that typed them before they named it).
type AccountKeys struct {
	Store  *Store
	Hasher *Hasher
}

// DestroyAccount implements command.DataKeys.
func (k AccountKeys) DestroyAccount(ctx context.Context, accountID string, emails []string) error {
	ids := []string{AccountKeyID(accountID)}
	for _, e := range emails {
		ids = append(ids, k.Hasher.IdentifierKeyID(e))
	}
	return k.Store.Destroy(ctx, ids...)
}
