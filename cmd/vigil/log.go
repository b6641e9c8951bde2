package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/vigil-auth/vigil/cmd/internal/cli"
	"github.com/vigil-auth/vigil/cmd/vigil/app"
	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/credential"
	"github.com/vigil-auth/vigil/eventstore/chain"
	"github.com/vigil-auth/vigil/eventstore/sealed"
	"github.com/vigil-auth/vigil/eventstore/sqlite"
)

// The commands of the log's integrity (API.md "Integrity of the log"): verify, log export,
// log rotate-key and log migrate.

const (
	optLogSigningKeyFile  = "log-signing-key-file"
	optCheckpointInterval = "checkpoint-interval"
	optExport             = "export"
	optPublicKey          = "public-key"
	optOut                = "out"
	optFrom               = "from"
	optTo                 = "to"
)

var (
	dataDirOption        = cli.Option{Flag: optDataDir, Env: "VIGIL_DATA_DIR", Def: app.DefaultDataDir, Meta: "DIR", Help: "the data directory whose log (events.db) is read"}
	logSigningKeyOption  = cli.Option{Flag: optLogSigningKeyFile, Env: "VIGIL_LOG_SIGNING_KEY_FILE", Meta: "FILE", DefHelp: "<data-dir>/" + app.LogSigningKeyFile, Help: "the Ed25519 key file that signs the log's checkpoints"}
	checkpointIntervalOp = cli.Option{Flag: optCheckpointInterval, Env: "VIGIL_CHECKPOINT_INTERVAL", Def: "1m", Meta: "DURATION", Help: "how often, at most, a signed checkpoint of the log's hash chain is written while events arrive (and one at a clean stop)"}
)

var verifyOptions = []cli.Option{
	dataDirOption,
	logSigningKeyOption,
	{Flag: optExport, Env: "VIGIL_VERIFY_EXPORT", Meta: "FILE", DefHelp: "none: verify the log in --data-dir", Help: "verify this file written by `vigil log export` instead, with --public-key and no access to the server"},
	{Flag: optPublicKey, Env: "VIGIL_VERIFY_PUBLIC_KEY", Meta: "KEY", DefHelp: "none", Help: "with --export: a public_key from GET /api/v1/log/keys (standard base64), or a file holding one per line or that JSON answer"},
}

var exportOptions = []cli.Option{
	dataDirOption,
	{Flag: optOut, Env: "VIGIL_LOG_EXPORT_OUT", Meta: "FILE", DefHelp: "none, required", Help: "the file to write (JSON lines: header, checkpoints, events with their hashes, end)"},
}

var rotateKeyOptions = []cli.Option{dataDirOption, logSigningKeyOption}

var migrateOptions = []cli.Option{
	{Flag: optFrom, Env: "VIGIL_LOG_MIGRATE_FROM", Meta: "PATH", DefHelp: "none, required", Help: "the old log: an events.db without the hash chain, or the data directory holding it"},
	{Flag: optTo, Env: "VIGIL_LOG_MIGRATE_TO", Meta: "PATH", DefHelp: "none, required", Help: "the new chained log to create: a file, or a directory to hold events.db"},
	{Flag: optDataDir, Env: "VIGIL_DATA_DIR", Def: app.DefaultDataDir, Meta: "DIR", Help: "the data directory the new log is served from: its keys.db receives the data keys that seal the copied personal data, and its secret.key (made when absent, as serve does) names the email reservations"},
	{Flag: optSecretKeyFile, Env: "VIGIL_SECRET_KEY_FILE", Meta: "FILE", DefHelp: "<data-dir>/secret.key, made when absent", Help: "the server key the new log will be served with, as serve's flag"},
}

// logCommands are the integrity commands, for program().
var logCommands = []cli.Command{
	{Name: "verify", Summary: "recompute the log's hash chain and check every signed checkpoint (exit 0: verified; 1: the first position tampered with)", Options: verifyOptions, Run: runVerify},
	{Name: "log", Summary: "export the log, rotate its signing key, migrate an old log"},
	{Name: "log export", Summary: "write the log's events (with hashes) and checkpoints as JSON lines, for `vigil verify --export`", Options: exportOptions, Run: runLogExport},
	{Name: "log rotate-key", Summary: "make a new checkpoint signing key, keeping the old public keys listed (a running server signs with it after a restart)", Options: rotateKeyOptions, Run: runLogRotateKey},
	{Name: "log migrate", Summary: "copy a log written before the hash chain and sealing into a new chained log, sealing its personal data and naming email reservations by the keyed index; ids, versions, positions and times stay", Options: migrateOptions, Run: runLogMigrate},
}

// signingKeyPath is the key file of a command: the flag, or the default in the data directory.
func signingKeyPath(s cli.Settings) string {
	if p := s[optLogSigningKeyFile].Value; p != "" {
		return p
	}
	return filepath.Join(s[optDataDir].Value, app.LogSigningKeyFile)
}

// openLog opens the data directory's log for reading only: a server may be appending.
func openLog(s cli.Settings) (*sqlite.Store, error) {
	path := filepath.Join(s[optDataDir].Value, app.EventsFile)
	st, err := sqlite.Open(sqlite.Config{Path: path, ReadOnly: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, s[optDataDir].Errorf("%v", err)
	}
	return st, nil
}

// report prints the verdict: the one line of success, or the first failure.
func report(e cli.Env, res chain.Result, err error) int {
	if f, ok := chain.AsFailure(err); ok {
		fmt.Fprintf(e.Stdout, "verification failed at %v\n", f)
		return cli.ExitFailure
	}
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: verify: %v\n", err)
		return cli.ExitFailure
	}
	fmt.Fprintf(e.Stdout, "verified %d events up to position %d\n", res.Events, res.Head)
	return cli.ExitOK
}

func runVerify(ctx context.Context, s cli.Settings, e cli.Env) int {
	if path := s[optExport].Value; path != "" {
		return verifyExport(s, e, path)
	}
	if s[optPublicKey].Value != "" {
		fmt.Fprintf(e.Stderr, "vigil: verify: %s goes with --%s\n", s[optPublicKey].Label(), optExport)
		return cli.ExitUsage
	}
	keys := chain.KeySet{}
	kr, err := chain.LoadKeyRing(signingKeyPath(s))
	switch {
	case err == nil:
		keys = kr.Public()
	case errors.Is(err, os.ErrNotExist):
		// No key yet: a log without checkpoints still verifies; any checkpoint will not.
	default:
		fmt.Fprintf(e.Stderr, "vigil: verify: --%s: %v\n", optLogSigningKeyFile, err)
		return cli.ExitFailure
	}
	st, err := openLog(s)
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: verify: %v\n", err)
		return cli.ExitFailure
	}
	defer st.Close()
	res, err := chain.VerifyLog(ctx, st, keys, true)
	return report(e, res, err)
}

func verifyExport(s cli.Settings, e cli.Env, path string) int {
	pk := s[optPublicKey]
	if pk.Value == "" {
		fmt.Fprintf(e.Stderr, "vigil: verify: --%s needs --%s (a public_key from GET /api/v1/log/keys, or a file holding it)\n", optExport, optPublicKey)
		return cli.ExitUsage
	}
	text := pk.Value
	if _, err := chain.ParsePublicKey(text); err != nil {
		raw, rerr := os.ReadFile(text)
		if rerr != nil {
			fmt.Fprintf(e.Stderr, "vigil: verify: %s\n", pk.Errorf("neither a base64 Ed25519 public key nor a readable file: %v", rerr))
			return cli.ExitUsage
		}
		text = string(raw)
	}
	keys, err := chain.ParseKeySet(text)
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: verify: %s\n", pk.Errorf("%v", err))
		return cli.ExitUsage
	}
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: verify: %s\n", s[optExport].Errorf("%v", err))
		return cli.ExitFailure
	}
	defer f.Close()
	res, err := chain.VerifyExport(f, keys)
	return report(e, res, err)
}

func runLogExport(ctx context.Context, s cli.Settings, e cli.Env) int {
	out := s[optOut].Value
	if out == "" {
		fmt.Fprintf(e.Stderr, "vigil: log export: --%s is required\n", optOut)
		return cli.ExitUsage
	}
	st, err := openLog(s)
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: log export: %v\n", err)
		return cli.ExitFailure
	}
	defer st.Close()
	fail := func(err error) int {
		fmt.Fprintf(e.Stderr, "vigil: log export: %v\n", err)
		return cli.ExitFailure
	}
	tmp, err := os.CreateTemp(filepath.Dir(out), ".vigil-export-*")
	if err != nil {
		return fail(s[optOut].Errorf("%v", err))
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	x, err := chain.NewExportWriter(tmp, true)
	if err != nil {
		return fail(err)
	}
	var events, cps uint64
	head, err := chain.Scan(ctx, st, true, func(cp chain.Checkpoint) error {
		cps++
		return x.Checkpoint(cp)
	}, func(ev domain.Envelope) (bool, error) {
		events++
		return true, x.Event(ev)
	})
	if err == nil {
		err = x.Close()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err == nil {
		err = os.Rename(tmp.Name(), out)
	}
	if err != nil {
		return fail(err)
	}
	fmt.Fprintf(e.Stdout, "exported %d events up to position %d and %d checkpoints to %s\n", events, head, cps, out)
	return cli.ExitOK
}

func runLogRotateKey(_ context.Context, s cli.Settings, e cli.Env) int {
	path := signingKeyPath(s)
	kr, err := chain.RotateKey(path, time.Now())
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			err = fmt.Errorf("no key file at %s (a server makes one on its first start)", path)
		}
		fmt.Fprintf(e.Stderr, "vigil: log rotate-key: --%s: %v\n", optLogSigningKeyFile, err)
		return cli.ExitFailure
	}
	fmt.Fprintf(e.Stdout, "new log signing key %s in %s; %d older public keys stay listed; restart the server to sign with it\n",
		kr.ActiveKeyID(), path, len(kr.Keys())-1)
	return cli.ExitOK
}

// logFile is the log file a --from or --to path names: the path itself, or events.db in it
// when it is a directory.
func logFile(path string) string {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() || strings.HasSuffix(path, string(os.PathSeparator)) {
		return filepath.Join(path, app.EventsFile)
	}
	return path
}

func runLogMigrate(ctx context.Context, s cli.Settings, e cli.Env) int {
	from, to := s[optFrom].Value, s[optTo].Value
	if from == "" || to == "" {
		fmt.Fprintf(e.Stderr, "vigil: log migrate: --%s and --%s are required\n", optFrom, optTo)
		return cli.ExitUsage
	}
	if sk := s[optSecretKeyFile]; sk.Value != "" {
		if _, err := app.ReadSecretKey(sk.Value); err != nil {
			fmt.Fprintf(e.Stderr, "vigil: log migrate: %v\n", sk.Errorf("%v", err))
			return cli.ExitUsage
		}
	}
	from, to = logFile(from), logFile(to)
	if err := sameServerKey(s, from); err != nil {
		fmt.Fprintf(e.Stderr, "vigil: log migrate: %v\n", err)
		return cli.ExitUsage
	}
	m := &migration{
		cfg: app.Config{DataDir: s[optDataDir].Value, Store: app.StoreSQLite, SecretKeyFile: s[optSecretKeyFile].Value,
			Logger: slog.New(slog.NewTextHandler(e.Stderr, nil))},
		hashed: map[string]string{}, renamed: map[string]bool{},
	}
	res, err := sqlite.Migrate(ctx, from, to, sqlite.MigrateConfig{Start: m.start, Scan: m.scan, Rewrite: m.rewrite})
	if m.sealed != nil {
		err = errors.Join(err, m.sealed.Close())
	}
	if err != nil {
		fmt.Fprintf(e.Stderr, "vigil: log migrate: %v\n", err)
		return cli.ExitFailure
	}
	kept := 0
	for _, renamed := range m.renamed {
		if !renamed {
			kept++
		}
	}
	fmt.Fprintf(e.Stdout, "migrated %d events of %d streams (positions %d to %d) from %s into the chained log %s: "+
		"%d reservation streams renamed by the keyed index (%d kept their name: no email of the log matches them), "+
		"personal data of %d events sealed under the keys of %s\n",
		res.Events, res.Streams, res.FirstPosition, res.LastPosition, from, to,
		len(m.renamed)-kept, kept, m.sealedEvents, m.cfg.DataDir)
	return cli.ExitOK
}

// sameServerKey refuses to make a new server key for the new log while the old log's directory
// holds one: the old log's TOTP and webhook secrets are sealed under that key, and a server
// with another one could not open them.
func sameServerKey(s cli.Settings, from string) error {
	if s[optSecretKeyFile].Value != "" {
		return nil
	}
	dataDir := s[optDataDir]
	if _, err := os.Stat(filepath.Join(dataDir.Value, app.SecretKeyFile)); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	oldKey := filepath.Join(filepath.Dir(from), app.SecretKeyFile)
	if _, err := os.Stat(oldKey); err != nil {
		return nil
	}
	return dataDir.Errorf("%s holds no %s but the old log's directory does: copy %s there or pass --%s %s, so that the secrets the old log sealed under it still open",
		dataDir.Value, app.SecretKeyFile, oldKey, optSecretKeyFile, oldKey)
}

// migration is what `vigil log migrate` does to each event beyond the copy (sqlite.Migrate's
// Start, Scan and Rewrite): before this release the reservation streams of emails and admin
// bootstraps were named by the unkeyed sha256 of the email and personal data was stored in
// clear; serve now looks them up by the keyed index (credential.Keyring.Index) and opens
// sealed values, so the copy renames the one and seals the other, as serve would have.
type migration struct {
	cfg          app.Config
	sealed       *sealed.Store
	keyring      *credential.Keyring
	hashed       map[string]string // hex sha256 of every email of the log -> the email
	renamed      map[string]bool   // old reservation or bootstrap stream -> whether it was renamed
	sealedEvents uint64
}

// start opens the sealing of the new log's data directory once the logs are known good.
func (m *migration) start(ctx context.Context, dst *sqlite.Store) error {
	st, key, err := app.OpenSealing(ctx, m.cfg, dst)
	if err != nil {
		return err
	}
	m.sealed = st
	m.keyring, err = credential.NewKeyring(credential.KeyringConfig{Key: key})
	return err
}

// scan collects the emails of the log, in clear: the bootstrap list is not in the log, and a
// stream only names a hash, so these are the emails a reservation can be renamed by.
func (m *migration) scan(e domain.Envelope) error {
	if e.Type != domain.EventAccountRegistered && e.Type != domain.EventEmailChanged {
		return nil
	}
	var d struct {
		Email    string `json:"email"`
		OldEmail string `json:"old_email"`
		NewEmail string `json:"new_email"`
	}
	if err := json.Unmarshal(e.Data, &d); err != nil {
		return fmt.Errorf("%s: %w", e.Type, err)
	}
	for _, email := range []string{d.Email, d.OldEmail, d.NewEmail} {
		if email != "" {
			sum := sha256.Sum256([]byte(email))
			m.hashed[hex.EncodeToString(sum[:])] = email
		}
	}
	return nil
}

// rewrite renames e's stream when it is a reservation or bootstrap stream named by the sha256
// of a known email, then seals e's personal data under the new data directory's keys, with e's
// own id bound in (so that the values open in the new log).
func (m *migration) rewrite(ctx context.Context, e *domain.Envelope) error {
	for _, r := range [...]struct {
		purpose string
		stream  func(string) string
	}{{"email", domain.EmailStream}, {"admin-bootstrap", domain.AdminBootstrapStream}} {
		hash, ok := strings.CutPrefix(e.StreamID, r.stream(""))
		if !ok {
			continue
		}
		email, known := m.hashed[hash]
		m.renamed[e.StreamID] = known
		if known {
			e.StreamID = r.stream(m.keyring.Index(r.purpose, email))
		}
		break
	}
	out, changed, err := m.sealed.SealEvent(ctx, e.StreamID, domain.EventData{ID: e.ID, Type: e.Type, SchemaVersion: e.SchemaVersion, Data: e.Data, Metadata: e.Metadata})
	if err != nil {
		return fmt.Errorf("%w (was --from migrated already?)", err)
	}
	if changed {
		e.Data, e.Metadata = out.Data, out.Metadata
		m.sealedEvents++
	}
	return nil
}
