package app

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/vigil-auth/vigil/projections"
	"github.com/vigil-auth/vigil/projections/risk"
)

// RiskFile holds the sign-in risk detector's checkpoint inside the data directory (apart
// from projections.db, which may be deleted and rebuilt: a rebuilt read model must not make
// the detector judge old sign-ins again).
const RiskFile = "risk.db"

// riskDetection is the app's sign-in risk detector (package risk); nil when
// Config.DisableRiskDetector is set.
type riskDetection struct {
	closeOnce sync.Once
	closeErr  error
	d         *risk.Detector
	done      chan error
}

// openRisk opens the detector over the sign-in history read model (it waits for the
// projections.SignIns projection of the runner to reach each sign-in before judging it).
func (a *App) openRisk(ctx context.Context) (*riskDetection, error) {
	if a.cfg.DisableRiskDetector {
		return nil, nil
	}
	d, err := risk.New(ctx, risk.Config{
		Log:     a.store,
		Path:    filepath.Join(a.cfg.DataDir, RiskFile),
		History: a.pdb,
		WaitHistory: func(ctx context.Context, position uint64) error {
			return a.runner.WaitForProjection(ctx, position, projections.SignInsName)
		},
		Recorder:   a.svc,
		Logger:     a.log,
		Registerer: a.cfg.Registry,
		Now:        a.cfg.Now,
	})
	if err != nil {
		return nil, fmt.Errorf("--data-dir: sign-in risk detector: %w", err)
	}
	return &riskDetection{d: d}, nil
}

// start runs the detector until ctx ends.
func (r *riskDetection) start(ctx context.Context) {
	if r == nil {
		return
	}
	r.done = make(chan error, 1)
	go func() { r.done <- r.d.Run(ctx) }()
}

// close stops the detector (when started, waiting for it) and closes its file.
func (r *riskDetection) close() error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() {
		r.closeErr = r.d.Close()
		if r.done != nil {
			if rerr := <-r.done; rerr != nil && r.closeErr == nil {
				r.closeErr = rerr
			}
			r.done = nil
		}
	})
	return r.closeErr
}

// RiskDetector returns the sign-in risk detector, nil when it is off (tests wait on it).
func (a *App) RiskDetector() *risk.Detector {
	if a.risk == nil {
		return nil
	}
	return a.risk.d
}
