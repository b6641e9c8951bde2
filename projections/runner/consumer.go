package runner

import (
	"context"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/eventstore/follow"
	"github.com/vigil-auth/vigil/projections"
)

// consumer makes p a consumer of the follower: each batch is applied, with p's checkpoint, in
// one transaction of the DB's writer.
func (r *Runner) consumer(p projections.Projection) follow.Consumer {
	a := &projections.Applier{DB: r.cfg.DB, Projections: []projections.Projection{p}, Now: r.cfg.Now, Observer: r.metrics}
	return follow.Consumer{Name: p.Name(), Checkpoints: r.cfg.DB,
		// Not cancelled by a shutdown: a batch is short, and what it applied is kept.
		Handle: func(ctx context.Context, batch []domain.Envelope) error {
			return a.Apply(context.WithoutCancel(ctx), batch)
		}}
}
