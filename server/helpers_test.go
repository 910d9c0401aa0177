package server_test

import (
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/store"
)

// storeWrite is a harmless one-change write: u-ursula joins grp-finance-emea.
func storeWrite(tenant string) store.Write {
	return store.Write{TenantID: tenant, Changes: []*pb.Change{addMember("grp-finance-emea", "u-ursula")}}
}
