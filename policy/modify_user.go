package policy

import (
	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// userActionRights says who may perform a sensitive action on a user. GA and Privileged Authentication
// Administrator may act on anyone; the other roles only on users who hold no directory role (Entra's
// "non-admin users"); applications need the permission listed.
var userActionRights = map[pb.UserAction]struct {
	roles []string
	perms []string
	what  string
}{
	pb.UserAction_USER_ACTION_RESET_PASSWORD: {
		roles: []string{helpdeskAdmin, passwordAdmin, userAdmin, authenticationAdmin},
		perms: []string{"User-PasswordProfile.ReadWrite.All", "User.ReadWrite.All", directoryReadWriteAll},
		what:  "reset the password of",
	},
	pb.UserAction_USER_ACTION_RESET_MFA: {
		roles: []string{authenticationAdmin},
		perms: []string{"UserAuthenticationMethod.ReadWrite.All"},
		what:  "reset the MFA methods of",
	},
	pb.UserAction_USER_ACTION_UPDATE_SENSITIVE_ATTRIBUTES: {
		roles: []string{userAdmin, authenticationAdmin},
		perms: []string{"User.ReadWrite.All", directoryReadWriteAll},
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
	_, superior := p.anyRole(globalAdmin, privilegedAuthAdmin)

	// A member or owner of a role-assignable group is protected: only the two most privileged roles may act.
	protectedBy := protectingGroup(dir, t)
	if protectedBy != nil && !superior {
		d.violate(pb.Rule_RULE_PRIVILEGED_AUTH_ADMIN_REQUIRED, true, []string{protectedBy.ID(), t.ID()},
			"%s is a member or owner of role-assignable group %s: only a Privileged Authentication Administrator or a Global Administrator may %s them, and %s is not",
			name(t), name(protectedBy), rights.what, name(p.node))
	}
	if superior {
		return d.result(), nil
	}
	_, hasRole := p.anyRole(rights.roles...)
	_, hasPerm := p.anyPermission(rights.perms...)
	switch {
	case !hasRole && !hasPerm:
		d.violate(pb.Rule_RULE_INSUFFICIENT_PRIVILEGE, true, []string{p.node.ID()},
			"%s holds no role or permission that can %s a user", name(p.node), rights.what)
	case hasRole && !hasPerm && len(t.DirectoryRoles()) > 0:
		// Target holds a directory role of its own: admin roles below Privileged Authentication Administrator
		// act on non-admin users only.
		d.violate(pb.Rule_RULE_INSUFFICIENT_PRIVILEGE, true, []string{p.node.ID(), t.ID()},
			"%s holds directory role %s: only a Privileged Authentication Administrator or a Global Administrator may %s an administrator",
			name(t), t.DirectoryRoles()[0], rights.what)
	}
	return d.result(), nil
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
