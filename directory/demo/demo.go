// Package demo embeds the demo tenant "contoso": a few dozen objects that exercise every rule of SPEC §4. The
// server serves it when no --snapshot is given; the README's examples and the conformance tests use it.
package demo

import (
	_ "embed"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

//go:embed contoso.json
var contosoJSON []byte

// TenantID is the demo tenant's id.
const TenantID = "contoso"

// Snapshot decodes a fresh copy of the demo tenant.
func Snapshot() *pb.Snapshot {
	s := &pb.Snapshot{}
	if err := protojson.Unmarshal(contosoJSON, s); err != nil {
		panic("demo: embedded contoso.json does not decode: " + err.Error()) // a build defect, caught by tests
	}
	return s
}

// Directory is the demo tenant at revision 1.
func Directory() (*directory.Directory, error) {
	return directory.FromSnapshot(Snapshot(), 1)
}
