package handlers

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
)

// adminRoutes: administration (API.md, role admin): client applications and roles. Service
// tokens come with the event stream issue.
func (s *jsonAPI) adminRoutes() []apiRoute {
	return []apiRoute{
		{
			method: http.MethodPost, path: "/admin/clients", access: admin,
			op: operation{
				ID: "registerClient", Summary: "Register a client application", Tags: []string{"administration"},
				Description: "An application whose users sign in here; sign-ins name it with client_id.",
				Request:     jsonBody(object(map[string]schema{"name": {"type": "string", "minLength": 1, "maxLength": 100}}, "name")),
				Responses: map[int]response{http.StatusCreated: {Description: "The client.",
					Schema: object(map[string]schema{"client_id": stringSchema(), "name": stringSchema()}, "client_id", "name")}},
			},
			h: s.registerClient,
		},
		{
			method: http.MethodPost, path: "/admin/accounts/:id/roles", access: admin,
			op: operation{
				ID: "grantRole", Summary: "Grant an account a role", Tags: []string{"administration"},
				Request:   jsonBody(object(map[string]schema{"role": {"type": "string", "enum": []string{domain.RoleAdmin, domain.RoleAuditor}}}, "role")),
				Responses: map[int]response{http.StatusNoContent: noContent("The account holds the role (granting a held role changes nothing).")},
			},
			errors: []problemLine{{http.StatusNotFound, "not_found: no account has this id"}},
			h:      s.grantRole,
		},
		{
			method: http.MethodDelete, path: "/admin/accounts/:id/roles/:role", access: admin,
			op: operation{
				ID: "revokeRole", Summary: "Take a role from an account", Tags: []string{"administration"},
				Description: "RoleRevoked; the account's sessions lose the role at once (roles are read on every request). " +
					"An admin cannot revoke their own role admin (another admin must), so that a slip cannot leave nobody to administer.",
				Params: []param{{Name: "role", In: "path", Required: true, Description: "admin or auditor.",
					Schema: schema{"type": "string", "enum": []string{domain.RoleAdmin, domain.RoleAuditor}}}},
				Responses: map[int]response{http.StatusNoContent: noContent("The account does not hold the role (revoking a role not held changes nothing).")},
			},
			errors: []problemLine{
				{http.StatusNotFound, "not_found: no account has this id, or the role is neither admin nor auditor"},
				{http.StatusConflict, "conflict: an admin revoking their own role admin"},
			},
			h: s.revokeRole,
		},
	}
}

type registerClientRequest struct {
	Name string `json:"name"`
}

func (s *jsonAPI) registerClient(c *gin.Context) {
	var req registerClientRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	rm, err := s.adminMeta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	cl, pos, err := s.svc.RegisterClient(c.Request.Context(), req.Name, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, pos)
	c.JSON(http.StatusCreated, gin.H{"client_id": cl.ID, "name": cl.Name})
}

type grantRoleRequest struct {
	Role string `json:"role"`
}

func (s *jsonAPI) grantRole(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	var req grantRoleRequest
	if err := bindJSON(c, &req); err != nil {
		writeError(c, err)
		return
	}
	if req.Role != domain.RoleAdmin && req.Role != domain.RoleAuditor {
		writeError(c, &domain.ValidationError{Field: "role", Reason: `must be "admin" or "auditor"`})
		return
	}
	rm, err := s.adminMeta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	pos, err := s.svc.GrantRole(c.Request.Context(), id, req.Role, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, pos)
	c.Status(http.StatusNoContent)
}

func (s *jsonAPI) revokeRole(c *gin.Context) {
	id, err := pathID(c, "id")
	if err != nil {
		writeError(c, err)
		return
	}
	role := c.Param("role")
	if role != domain.RoleAdmin && role != domain.RoleAuditor {
		writeError(c, Public(ErrNotFound, `There is no such role: roles are "admin" and "auditor".`, nil))
		return
	}
	if role == domain.RoleAdmin && id == callerOf(c).AccountID {
		writeError(c, Public(ErrConflict, "An admin cannot revoke their own role admin; another admin must.", nil))
		return
	}
	rm, err := s.adminMeta(c)
	if err != nil {
		writeError(c, err)
		return
	}
	pos, err := s.svc.RevokeRole(c.Request.Context(), id, role, rm)
	if err != nil {
		writeError(c, err)
		return
	}
	s.setPosition(c, pos)
	c.Status(http.StatusNoContent)
}
