package web

import (
	"context"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
)

// commandByID is the shape of a command on one object named by the path's id: the id, the
// request meta (s.meta, or s.adminMeta for an admin acting on someone else's object), then
// run. Every failure is answered here (ok false); on success the caller answers, with pos.
func (s *Core) CommandByID(c *gin.Context, metaOf func(*gin.Context) (domain.RequestMeta, error),
	run func(ctx context.Context, id string, rm domain.RequestMeta) (uint64, error)) (id string, pos uint64, ok bool) {
	id, err := PathID(c, "id")
	if err != nil {
		WriteError(c, err)
		return "", 0, false
	}
	rm, err := metaOf(c)
	if err != nil {
		WriteError(c, err)
		return "", 0, false
	}
	if pos, err = run(c.Request.Context(), id, rm); err != nil {
		WriteError(c, err)
		return "", 0, false
	}
	return id, pos, true
}
