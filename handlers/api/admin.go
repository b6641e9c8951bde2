package api

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/handlers/web"
)

// adminRoutes: administration (API.md, role admin): client applications and roles. Service
// tokens come with the event stream issue.
func (s *API) adminRoutes() []web.Route {
	return []web.Route{
		{
			Method: http.MethodPost, Path: "/admin/clients", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "registerClient", Summary: "Register a client application", Tags: []string{"administration"},
				Description: "An application whose users sign in here; sign-ins name it with client_id.",
				Request:     web.JsonBody(web.Object(map[string]web.Schema{"name": {"type": "string", "minLength": 1, "maxLength": 100}}, "name")),
				Responses: map[int]web.Response{http.StatusCreated: {Description: "The client.",
					Schema: web.Object(map[string]web.Schema{"client_id": web.StringSchema(), "name": web.StringSchema()}, "client_id", "name")}},
			},
			Handler: web.Command(s.Core, web.MetaAdmin, s.registerClient),
		},
		{
			Method: http.MethodPost, Path: "/admin/accounts/:id/roles", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "grantRole", Summary: "Grant an account a role", Tags: []string{"administration"},
				Request:   web.JsonBody(web.Object(map[string]web.Schema{"role": {"type": "string", "enum": []string{domain.RoleAdmin, domain.RoleAuditor}}}, "role")),
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("The account holds the role (granting a held role changes nothing).")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: no account has this id"}},
			Handler: web.Command(s.Core, web.MetaAdmin, s.grantRole),
		},
		{
			Method: http.MethodDelete, Path: "/admin/accounts/:id/roles/:role", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "revokeRole", Summary: "Take a role from an account", Tags: []string{"administration"},
				Description: "RoleRevoked; the account's sessions lose the role at once (roles are read on every request). " +
					"An admin cannot revoke their own role admin (another admin must), so that a slip cannot leave nobody to administer.",
				Params: []web.Param{{Name: "role", In: "path", Required: true, Description: "admin or auditor.",
					Schema: web.Schema{"type": "string", "enum": []string{domain.RoleAdmin, domain.RoleAuditor}}}},
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("The account does not hold the role (revoking a role not held changes nothing).")},
			},
			Errors: []web.ProblemLine{
				{Status: http.StatusNotFound, Text: "not_found: no account has this id, or the role is neither admin nor auditor"},
				{Status: http.StatusConflict, Text: "conflict: an admin revoking their own role admin"},
			},
			Handler: web.Command(s.Core, web.MetaAdmin, s.revokeRole),
		},
		{
			Method: http.MethodPost, Path: "/admin/accounts/:id/erase", Access: web.AccessAdmin,
			Op: web.Operation{
				ID: "eraseAccount", Summary: "Erase an account", Tags: []string{"administration"},
				Description: "API.md \"Personal data and erasure\": AccountErased (the admin is its actor), the account's sessions " +
					"signed out (reason account_erased), its data key destroyed, the read models forget it within a second, and its " +
					"email can be registered again. Its events stay in the log, verifiable, with every personal value \"[erased]\".",
				Responses: map[int]web.Response{http.StatusNoContent: web.NoContent("Erased (erasing an erased account changes nothing more).")},
			},
			Errors:  []web.ProblemLine{{Status: http.StatusNotFound, Text: "not_found: no account has this id"}},
			Handler: web.Command(s.Core, web.MetaAdmin, s.eraseAccount),
		},
	}
}

func (s *API) eraseAccount(r *web.Call[web.NoBody]) (web.Reply, error) {
	pos, err := s.svc.EraseAccount(r.Ctx, r.ID, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}

type registerClientRequest struct {
	Name string `json:"name"`
}

func (s *API) registerClient(r *web.Call[registerClientRequest]) (web.Reply, error) {
	cl, pos, err := s.svc.RegisterClient(r.Ctx, r.In.Name, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.JSON(http.StatusCreated, gin.H{"client_id": cl.ID, "name": cl.Name}, pos), nil
}

type grantRoleRequest struct {
	Role string `json:"role"`
}

// Check refuses a role other than admin and auditor.
func (r grantRoleRequest) Check() error {
	if r.Role != domain.RoleAdmin && r.Role != domain.RoleAuditor {
		return &domain.ValidationError{Field: "role", Reason: `must be "admin" or "auditor"`}
	}
	return nil
}

func (s *API) grantRole(r *web.Call[grantRoleRequest]) (web.Reply, error) {
	pos, err := s.svc.GrantRole(r.Ctx, r.ID, r.In.Role, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}

// roleRevocation is the role the path of a revocation names, checked before the request
// metadata: a role that is neither admin nor auditor is not found; an admin revoking their
// own role admin is a conflict.
type roleRevocation struct {
	web.NoBody
	role string
}

// FromPath reads and checks the role.
func (in *roleRevocation) FromPath(p web.Path) error {
	in.role = p.Param("role")
	if in.role != domain.RoleAdmin && in.role != domain.RoleAuditor {
		return web.Public(web.ErrNotFound, `There is no such role: roles are "admin" and "auditor".`, nil)
	}
	if in.role == domain.RoleAdmin && p.ID == p.Caller.AccountID {
		return web.Public(web.ErrConflict, "An admin cannot revoke their own role admin; another admin must.", nil)
	}
	return nil
}

func (s *API) revokeRole(r *web.Call[roleRevocation]) (web.Reply, error) {
	pos, err := s.svc.RevokeRole(r.Ctx, r.ID, r.In.role, r.Meta)
	if err != nil {
		return web.Reply{}, err
	}
	return web.Done(pos), nil
}
