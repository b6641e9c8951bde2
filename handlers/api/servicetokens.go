package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain/command"
	"github.com/vigil-auth/vigil/handlers/web"
)

// Service tokens (API.md "Administration" and "Compliance stream"): admins create, list and
// revoke them; machines present them as "Authorization: Bearer vgl_...". A route that takes
// them puts serviceAuth(scope) before the session middleware: a request with a service token
// is decided there (401 unknown or revoked, 403 without the scope) and the session
// middleware lets it through; any other request goes on to the session checks.

// serviceTokenRoutes: the administration of service tokens (role admin).
func (s *API) serviceTokenRoutes() []web.Route {
	tags := []string{"administration"}
	tokenSchema := web.Object(map[string]web.Schema{
		"id":         web.StringSchema(),
		"name":       web.StringSchema(),
		"scopes":     web.ArrayOf(web.Schema{"type": "string", "enum": command.ServiceTokenScopes}),
		"created_at": web.DateTime(),
		"created_by": {"type": "string", "description": "The id of the admin who created it."},
		"revoked":    web.BoolSchema(),
		"revoked_at": web.NullableDateTime(),
	}, "id", "name", "scopes", "created_at", "revoked", "revoked_at")
	return []web.Route{
		{
			Method: http.MethodPost, Path: "/admin/service-tokens", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "createServiceToken", Summary: "Create a service token", Tags: tags,
				Description: "A credential for machines: send it as `Authorization: Bearer vgl_...`. The token is shown " +
					"once; Vigil keeps only its SHA-256. Scopes: events:read (GET /api/v1/events and its stream), " +
					"audit:read (the GET routes under /api/v1/audit), ssf:manage (the Shared Signals streams, status, " +
					"verification and polls under /api/v1/ssf).",
				Request: web.JsonBody(web.Object(map[string]web.Schema{
					"name":   {"type": "string", "minLength": 1, "maxLength": command.MaxServiceTokenName},
					"scopes": {"type": "array", "minItems": 1, "items": web.Schema{"type": "string", "enum": command.ServiceTokenScopes}},
				}, "name", "scopes")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "The token, shown once.",
					Schema: web.Object(map[string]web.Schema{
						"id": web.StringSchema(), "token": {"type": "string", "description": "vgl_ followed by 256 random bits (base64url); shown only here."},
						"name": web.StringSchema(), "scopes": web.ArrayOf(web.StringSchema()), "created_at": web.DateTime(),
					}, "id", "token", "name", "scopes", "created_at")}},
			},
			Handler: web.Command(s.Core, web.MetaAdmin, s.createServiceToken),
		},
		{
			Method: http.MethodGet, Path: "/admin/service-tokens", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "listServiceTokens", Summary: "List the service tokens", Tags: tags,
				Description: "Every token this instance knows, revoked ones too, oldest first; never the secrets.",
				Responses: map[int]web.Response{http.StatusOK: {Description: "The tokens.",
					Schema: web.Object(map[string]web.Schema{"items": web.ArrayOf(tokenSchema)}, "items")}},
			},
			Handler: web.Command(s.Core, web.MetaAdmin, s.listServiceTokens),
		},
		{
			Method: http.MethodDelete, Path: "/admin/service-tokens/:id", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "revokeServiceToken", Summary: "Revoke a service token", Tags: tags,
				Description: "Every later use is refused (401) on this instance before this answers, on others once " +
					"their feed of the log has the revocation. Revoking a revoked token changes nothing.",
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("Revoked.")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: no service token has this id"}},
			Handler: web.Command(s.Core, web.MetaAdmin, s.revokeServiceToken),
		},
	}
}

type createServiceTokenRequest struct {
	Name   string   `json:"name"`
	Scopes []string `json:"scopes"`
}

type serviceTokenJSON struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Scopes    []string `json:"scopes"`
	CreatedAt APITime  `json:"created_at"`
	CreatedBy string   `json:"created_by,omitempty"`
	Revoked   bool     `json:"revoked"`
	RevokedAt APITime  `json:"revoked_at"`
}

func serviceTokenView(t command.ServiceToken) serviceTokenJSON {
	return serviceTokenJSON{ID: t.ID, Name: t.Name, Scopes: t.Scopes, CreatedAt: APITime(t.CreatedAt), CreatedBy: t.CreatedBy,
		Revoked: t.Revoked, RevokedAt: APITime(t.RevokedAt)}
}

func (s *API) createServiceToken(r *web.Call[createServiceTokenRequest]) (web.Reply, error) {
	tok, secret, pos, err := s.serviceTokens.Create(r.Ctx, r.In.Name, r.In.Scopes, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusCreated, gin.H{"id": tok.ID, "token": secret, "name": tok.Name, "scopes": tok.Scopes,
		"created_at": APITime(tok.CreatedAt)}, pos), nil
}

func (s *API) listServiceTokens(*web.Call[web.NoBody]) (web.Reply, error) {
	list := s.serviceTokens.List()
	items := make([]serviceTokenJSON, len(list))
	for i, t := range list {
		items[i] = serviceTokenView(t)
	}
	return web.JSON(http.StatusOK, gin.H{"items": items}, 0), nil
}

func (s *API) revokeServiceToken(r *web.Call[web.NoBody]) (web.Reply, error) {
	pos, err := s.serviceTokens.Revoke(r.Ctx, r.ID, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}
