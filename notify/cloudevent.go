package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/url"
	"strconv"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// The CloudEvents 1.0 types of SPEC §16.
const (
	TypeOpened   = "io.groupgate.finding.opened"
	TypeResolved = "io.groupgate.finding.resolved"
)

// ContentType is the structured-mode media type of a single JSON CloudEvent: the HTTP protocol binding
// (cloudevents/spec cloudevents/bindings/http-protocol-binding.md §3.2 "Structured Content Mode") carries the
// whole event, attributes and data, as the body under the event format's media type, which the JSON format
// (cloudevents/formats/json-format.md §3 "Envelope") names application/cloudevents+json.
const ContentType = "application/cloudevents+json; charset=utf-8"

// SignatureHeader carries "sha256=" and the lowercase hex HMAC-SHA256 of the exact body under the shared secret,
// so that a receiver can tell groupgate's events from anyone else's posts to its URL.
const SignatureHeader = "X-Groupgate-Signature"

// cloudEvent is one event in the JSON format (cloudevents/formats/json-format.md): the context attributes as
// top-level members, the data as a JSON value under "data" because datacontenttype is application/json
// (json-format.md §3.1 "Handling of data"). Required attributes (cloudevents/spec.md "REQUIRED Attributes"):
// specversion "1.0", id, source (a non-empty URI-reference), type; source+id identify an event, so a receiver
// drops a redelivered one by them. Optional ones used: subject, time (RFC 3339), datacontenttype.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            string          `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
}

// Source is an event's source attribute: the tenant as the relative URI-reference /tenants/{id}. The spec allows
// a URI-reference (spec.md "source"), and a relative one is the producer's own name for the context: every
// replica of groupgate sends the same source for the same tenant, so source+id stays the same when another
// replica redelivers an event (an absolute URI would have to carry a host name, and replicas behind a load
// balancer do not share one). The tenant id is path-escaped: it is a caller-chosen string.
func Source(tenant string) string { return "/tenants/" + url.PathEscape(tenant) }

// EventID is the CloudEvent id of the SPEC §16 contract: finding_id-opened|resolved-revision. The same finding
// event gets the same id from every replica and after every restart, so receivers can deduplicate.
func EventID(e *pb.FindingEvent) string {
	return e.GetFindingId() + "-" + kindWord(e.GetKind()) + "-" + strconv.FormatInt(e.GetRevision(), 10)
}

func kindWord(k pb.FindingEventKind) string {
	if k == pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED {
		return "resolved"
	}
	return "opened"
}

// dataJSON is the FindingEvent as the HTTP/JSON API writes it (protojson, lowerCamelCase names).
var dataJSON = protojson.MarshalOptions{}

// Encode is the body of the event's POST: one CloudEvent in the JSON format, its data the FindingEvent.
func Encode(tenant string, e *pb.FindingEvent, at time.Time) ([]byte, error) {
	data, err := dataJSON.Marshal(e)
	if err != nil {
		return nil, err
	}
	typ := TypeOpened
	if e.GetKind() == pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED {
		typ = TypeResolved
	}
	return json.Marshal(cloudEvent{
		SpecVersion: "1.0", ID: EventID(e), Source: Source(tenant), Type: typ,
		Subject: e.GetFinding().GetGroupId(), Time: at.UTC().Format(time.RFC3339Nano),
		DataContentType: "application/json", Data: data,
	})
}

// Sign is the X-Groupgate-Signature value of a body: "sha256=" + hex(HMAC-SHA256(secret, body)).
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify reports whether sig is body's signature under secret, in constant time (receivers and tests).
func Verify(secret, body []byte, sig string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(sig))
}
