package web

import (
	"context"
	"net/http"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/command"
)

// Call is one request to a JSON command as Command hands it to the command's function: the
// path's id, the decoded and checked body, the caller and the request metadata, each
// worked out once, in that order, before the command runs.
type Call[In any] struct {
	C      *gin.Context
	Ctx    context.Context
	Caller domain.Session
	// ID is the path's :id ("" when the route has none).
	ID   string
	In   In
	Meta command.RequestMeta
	// Limit and Cursor are the page a list asks for (List; zero for other commands).
	Limit  int
	Cursor string
}

// Reply is a command's answer: a status and a JSON body (none for 204), or raw bytes of a
// content type; Pos is the log position it wrote, sent as Vigil-Position by state changes
// (0: the log's head).
type Reply struct {
	status      int
	body        any
	contentType string
	raw         []byte
	pos         uint64
	written     bool
}

// JSON answers body with status; pos as Reply.
func JSON(status int, body any, pos uint64) Reply { return Reply{status: status, body: body, pos: pos} }

// Done answers 204 No Content; pos as Reply.
func Done(pos uint64) Reply { return Reply{status: http.StatusNoContent, pos: pos} }

// Accepted answers 202 Accepted without a body; pos as Reply.
func Accepted(pos uint64) Reply { return Reply{status: http.StatusAccepted, pos: pos} }

// Raw answers 200 with data of contentType.
func Raw(contentType string, data []byte) Reply {
	return Reply{status: http.StatusOK, contentType: contentType, raw: data}
}

// Written says the command has written its answer itself (a stream): Command adds nothing.
func Written() Reply { return Reply{written: true} }

// NoBody is the In of a command that takes no request body; embedded in an In, the In
// takes none either (its fields come from the path, see Path).
type NoBody struct{}

func (NoBody) noBody() {}

// Path is what an In's FromPath method reads: the route's path parameters besides :id, with
// the id and the caller. Command calls FromPath after the id and before the body, so that an
// In can check the rest of the path (and refuse it) before anything else is looked at.
type Path struct {
	c      *gin.Context
	ID     string
	Caller domain.Session
}

// Param is the raw path parameter name.
func (p Path) Param(name string) string { return p.c.Param(name) }

// PathID is the path parameter name checked as an id (PathID).
func (p Path) PathID(name string) (string, error) { return PathID(p.c, name) }

// OptionalBody, embedded in an In, lets the request leave the body out (BindOptionalJSON).
type OptionalBody struct{}

func (OptionalBody) optionalBody() {}

// MetaKind says how Command builds the request metadata of a state change (reads get
// RequestMeta).
type MetaKind int

const (
	// MetaCaller is Core.Meta: the X-Vigil-Client header must name a registered client.
	MetaCaller MetaKind = iota
	// MetaAdmin is Core.AdminMeta: the caller acts as an administrator.
	MetaAdmin
	// MetaSignIn is RequestMeta: the sign-in commands check the client they name.
	MetaSignIn
	// MetaNone is RequestMeta, and no Vigil-Position either: the command changes state
	// outside the event log (a webhook delivery replayed).
	MetaNone
)

// Command is the one shape of a JSON route: the path's id (PathID), the rest of the path
// (In's FromPath method, when it has one), the body decoded into In (BindJSON; none for an
// In that is or embeds NoBody; may be absent with OptionalBody) and checked (In's Check
// method, when it has one), the request metadata of kind, then run; its error becomes the
// problem document (WriteError), its Reply the answer, with Vigil-Position on a state
// change.
func Command[In any](s *Core, kind MetaKind, run func(*Call[In]) (Reply, error)) gin.HandlerFunc {
	return func(c *gin.Context) {
		r := &Call[In]{C: c, Ctx: c.Request.Context(), Caller: CallerOf(c)}
		unsafe := UnsafeMethod(c.Request.Method)
		err := r.prepare(s, kind, unsafe)
		var out Reply
		if err == nil {
			out, err = run(r)
		}
		if err != nil {
			WriteError(c, err)
			return
		}
		if out.written {
			return
		}
		if unsafe && kind != MetaNone {
			s.SetPosition(c, out.pos)
		}
		switch {
		case out.raw != nil:
			c.Data(out.status, out.contentType, out.raw)
		case out.status == http.StatusNoContent, out.status == http.StatusAccepted && out.body == nil:
			c.Status(out.status)
		default:
			c.JSON(out.status, out.body)
		}
	}
}

// prepare works out r's id, body and metadata.
func (r *Call[In]) prepare(s *Core, kind MetaKind, unsafe bool) error {
	c := r.C
	if strings.Contains(c.FullPath(), "/:id") {
		id, err := PathID(c, "id")
		if err != nil {
			return err
		}
		r.ID = id
	}
	in := any(&r.In)
	if fp, ok := in.(interface{ FromPath(Path) error }); ok {
		if err := fp.FromPath(Path{c: c, ID: r.ID, Caller: r.Caller}); err != nil {
			return err
		}
	}
	if _, none := in.(interface{ noBody() }); !none {
		bind := BindJSON
		if _, opt := in.(interface{ optionalBody() }); opt {
			bind = BindOptionalJSON
		}
		if err := bind(c, in); err != nil {
			return err
		}
		if ch, ok := in.(interface{ Check() error }); ok {
			if err := ch.Check(); err != nil {
				return err
			}
		}
	}
	var err error
	switch {
	case !unsafe || kind == MetaSignIn || kind == MetaNone:
		r.Meta = RequestMeta(c)
	case kind == MetaAdmin:
		r.Meta, err = s.AdminMeta(c)
	default:
		r.Meta, err = s.Meta(c)
	}
	return err
}

// List is Command for a list (a GET route with Route.List): the path's id, then the page
// asked for (PageParams, once, into the Call's Limit and Cursor), then run, whose items and
// next cursor are answered as a page (Page).
func List[T any](s *Core, run func(*Call[NoBody]) ([]T, string, error)) gin.HandlerFunc {
	return Command(s, MetaCaller, func(r *Call[NoBody]) (Reply, error) {
		var err error
		if r.Limit, r.Cursor, err = PageParams(r.C); err != nil {
			return Reply{}, err
		}
		items, next, err := run(r)
		if err != nil {
			return Reply{}, err
		}
		return JSON(http.StatusOK, Page(items, next), 0), nil
	})
}
