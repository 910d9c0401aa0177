package notify

import (
	"slices"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// sortEvents puts catch-up events in a fixed order (RESOLVED first, then by finding id), so that two replicas
// catching up the same difference send the same sequence.
func sortEvents(es []*pb.FindingEvent) {
	slices.SortFunc(es, func(a, b *pb.FindingEvent) int {
		if a.GetKind() != b.GetKind() {
			if a.GetKind() == pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED {
				return -1
			}
			return 1
		}
		return strings.Compare(a.GetFindingId(), b.GetFindingId())
	})
}
