package policy

import (
	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// userActionRights says what a sensitive action on a user needs: the resource action a role must hold over the
// user (directory.Task; the built-in roles that hold each are in directory/builtin_roles.go, from the
// permissions reference), and the application permissions that grant it. Global Administrators and
// Privileged Authentication Administrators (tenant-wide) may act on anyone; every other role only on users who
// hold no directory role (Entra's "non-admin users"; admin-units-assign-roles.md says the same of every role
// at administrative-unit scope).
var userActionRights = map[pb.UserAction]struct {
	right right
	what  string
}{
	pb.UserAction_USER_ACTION_RESET_PASSWORD: {
		right: right{task: directory.TaskPassword, perms: []string{"User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All", directoryReadWriteAll}},
		what:  "reset the password of",
	},
	pb.UserAction_USER_ACTION_RESET_MFA: {
		right: right{task: directory.TaskAuthMethods, perms: []string{"UserAuthenticationMethod.ReadWrite.All"}},
		what:  "reset the MFA methods of",
	},
	pb.UserAction_USER_ACTION_UPDATE_SENSITIVE_ATTRIBUTES: {
		right: right{task: directory.TaskSensitive, perms: []string{"User.ReadWrite.All", directoryReadWriteAll}},
		what:  "update the sensitive attributes (email, phone, UPN) of",
	},
}

// CanModifyUser decides whether actor may perform a sensitive action on a user (SPEC §4, CanModifyUser).
func (e *Engine) CanModifyUser(dir *directory.Directory, req *pb.CanModifyUserRequest) (*pb.Decision, error) {
	t, ok := dir.Lookup(req.GetTargetUserId())
	if !ok {
		return nil, &directory.NotFoundError{Kind: "user", ID: req.GetTargetUserId()}
	}
	if t.Kind() != directory.KindUser {
		return nil, invalid("target_user_id", "%q is a %s, not a user", t.ID(), t.Kind())
	}
	a, err := actor(dir, "actor_id", req.GetActorId())
	if err != nil {
		return nil, err
	}
	rights, ok := userActionRights[req.GetAction()]
	if !ok {
		return nil, invalid("action", "unknown action %v", req.GetAction())
	}
	d := newDecision(dir)
	p := newPrincipal(dir, a)
	superior, isSuperior := p.tenantRole(globalAdmin, privilegedAuthAdmin)

	// A member or owner of a role-assignable group is protected: only the two most privileged roles may act.
	protectedBy := protectingGroup(dir, t)
	if protectedBy != nil && !isSuperior {
		d.violate(pb.Rule_RULE_PRIVILEGED_AUTH_ADMIN_REQUIRED, true, []string{protectedBy.ID(), t.ID()},
			"%s is a member or owner of role-assignable group %s: only a Privileged Authentication Administrator or a Global Administrator may %s them, and %s is not",
			name(t), name(protectedBy), rights.what, name(p.node))
	}
	if isSuperior && restrictedUnit(dir, t) == nil {
		d.hold(p, t, superior)
		return d.result(), nil
	}
	h, why, ok := p.privilege(t, rights.right)
	adminRole := heldRole(dir, t)
	switch {
	case ok && h.kind == holdRole && adminRole != "":
		// The target holds a directory role of its own: roles below Privileged Authentication Administrator act
		// on non-admin users only, and so does every role held at administrative-unit or object scope.
		if perm, has := p.anyPermission(rights.right.perms...); has && why.restricted == nil {
			d.hold(p, t, holding{kind: holdPermission, perm: perm})
			break
		}
		d.violate(pb.Rule_RULE_INSUFFICIENT_PRIVILEGE, true, []string{p.node.ID(), t.ID()},
			"%s holds directory role %s: only a Privileged Authentication Administrator or a Global Administrator (tenant-wide) may %s an administrator, and %s acts with %s",
			name(t), adminRole, rights.what, name(p.node), h.describe())
	case ok:
		d.hold(p, t, h)
	case why.blocked.kind == 0 && !isSuperior:
		path := []string{p.node.ID()}
		if ev := why.evidence(t, p.node); len(ev) > 2 {
			path = append(path, ev[2]) // the scope that fell short
		}
		d.violate(pb.Rule_RULE_INSUFFICIENT_PRIVILEGE, true, path,
			"%s holds no role or permission that can %s a user%s", name(p.node), rights.what, why.why(t))
		d.restrict(t, p, why, rights.what)
	default:
		d.restrict(t, p, why, rights.what)
	}
	return d.result(), nil
}

// heldRole is a role the user holds itself (directory_roles or a role assignment at any scope), or "".
func heldRole(dir *directory.Directory, u *directory.Node) string {
	if r := u.DirectoryRoles(); len(r) > 0 {
		return r[0]
	}
	if g := dir.Grants(u); len(g) > 0 {
		return g[0].RoleName
	}
	return ""
}

// protectingGroup returns a role-assignable group the user is a direct member or owner of, if any.
func protectingGroup(dir *directory.Directory, u *directory.Node) *directory.Node {
	for _, refs := range [][]directory.Ref{u.MemberOf(), u.OwnerOf()} {
		for _, g := range refs {
			if gn := dir.Node(g); gn != nil && gn.Group().GetIsAssignableToRole() {
				return gn
			}
		}
	}
	return nil
}
