package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
)

// Service tokens (API.md "Administration" and "Compliance stream"): admins create, list and
// revoke them; machines present them as "Authorization: Bearer vgl_...". A route that takes
// them puts serviceAuth(scope) before the session middleware: a request with a service token
// is decided there (401 unknown or revoked, 403 without the scope) and the session
// middleware lets it through; any other request goes on to the session checks.

// serviceTokenRoutes: the administration of service tokens (role admin).
func (s *jsonAPI) serviceTokenRoutes() []apiRoute {
	tags := []string{"administration"}
	tokenSchema := object(map[string]schema{
		"id":         stringSchema(),
		"name":       stringSchema(),
		"scopes":     arrayOf(schema{"type": "string", "enum": domain.ServiceTokenScopes}),
		"created_at": dateTime(),
		"created_by": {"type": "string", "description": "The id of the admin who created it."},
		"revoked":    boolSchema(),
		"revoked_at": nullableDateTime(),
	}, "id", "name", "scopes", "created_at", "revoked", "revoked_at")
	return []apiRoute{
		{
			method: http.MethodPost, path: "/admin/service-tokens", access: admin,
			op: operation{
				ID: "createServiceToken", Summary: "Create a service token", Tags: tags,
				Description: "A credential for machines: send it as `Authorization: Bearer vgl_...`. The token is shown " +
					"once; Vigil keeps only its SHA-256. Scopes: events:read (GET /api/v1/events and its stream), " +
					"audit:read (the GET routes under /api/v1/audit).",
				Request: jsonBody(object(map[string]schema{
					"name":   {"type": "string", "minLength": 1, "maxLength": domain.MaxServiceTokenName},
					"scopes": {"type": "array", "minItems": 1, "items": schema{"type": "string", "enum": domain.ServiceTokenScopes}},
				}, "name", "scopes")),
				Responses: map[int]response{http.StatusCreated: {Description: "The token, shown once.",
					Schema: object(map[string]schema{
						"id": stringSchema(), "token": {"type": "string", "description": "vgl_ followed by 256 random bits (base64url); shown only here."},
						"name": stringSchema(), "scopes": arrayOf(stringSchema()), "created_at": dateTime(),
					}, "id", "token", "name", "scopes", "created_at")}},
			},
			h: s.createServiceToken,
		},
		{
			method: http.MethodGet, path: "/admin/service-tokens", access: admin,
			op: operation{
				ID: "listServiceTokens", Summary: "List the service tokens", Tags: tags,
				Description: "Every token this instance knows, revoked ones too, oldest first; never the secrets.",
				Responses: map[int]response{http.StatusOK: {Description: "The tokens.",
					Schema: object(map[string]schema{"items": arrayOf(tokenSchema)}, "items")}},
			},
			h: s.listServiceTokens,
		},
		{
			method: http.MethodDelete, path: "/admin/service-tokens/:id", access: admin,
			op: operation{
				ID: "revokeServiceToken", Summary: "Revoke a service token", Tags: tags,
				Description: "Every later use is refused (401) on this instance before this answers, on others once " +
					"their feed of the log has the revocation. Revoking a revoked token changes nothing.",
				Responses: map[int]response{http.StatusNoContent: noContent("Revoked.")},
			},
			errors: []problemLine{{http.StatusNotFound, "not_found: no service token has this id"}},
			h:      s.revokeServiceToken,
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
	CreatedAt apiTime  `json:"created_at"`
	CreatedBy string   `json:"created_by,omitempty"`
	Revoked   bool     `json:"revoked"`
	RevokedAt apiTime  `json:"revoked_at"`
}

func serviceTokenView(t domain.ServiceToken) serviceTokenJSON {
	return serviceTokenJSON{ID: t.ID, Name: t.Name, Scopes: t.Scopes, CreatedAt: apiTime(t.CreatedAt), CreatedBy: t.CreatedBy,
		Revoked: t.Revoked, RevokedAt: apiTime(t.RevokedAt)}
}

func (s *jsonAPI) createServiceToken(c *gin.Context) {
	var req createServiceTokenRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.adminMeta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	tok, secret, pos, err := s.serviceTokens.Create(c.Request.Context(), req.Name, req.Scopes, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, pos)
	c.JSON(http.StatusCreated, gin.H{"id": tok.ID, "token": secret, "name": tok.Name, "scopes": tok.Scopes,
		"created_at": apiTime(tok.CreatedAt)})
}

func (s *jsonAPI) listServiceTokens(c *gin.Context) {
	list := s.serviceTokens.List()
	items := make([]serviceTokenJSON, len(list))
	for i, t := range list {
		items[i] = serviceTokenView(t)
	}
	c.JSON(http.StatusOK, gin.H{"items": items})
}

func (s *jsonAPI) revokeServiceToken(c *gin.Context) {
	if _, pos, ok := s.commandByID(c, s.adminMeta, s.serviceTokens.Revoke); ok {
		s.setPosition(c, pos)
		c.Status(http.StatusNoContent)
	}
}
