// Package notifytest is a webhook receiver for tests: it checks every event's signature and shape and counts
// what arrives.
package notifytest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/notify"
	"google.golang.org/protobuf/encoding/protojson"
)

// Event is one CloudEvent the receiver accepted.
type Event struct {
	ID, Type, Source, Subject string
	Finding                   *pb.FindingEvent
	Body                      []byte
}

// Receiver is an httptest server taking findings webhooks.
type Receiver struct {
	*httptest.Server
	secret []byte

	mu       sync.Mutex
	events   []Event
	bad      []string // what was wrong with refused posts
	attempts int
	failNext int
	hang     chan struct{} // while set, posts wait on it
	arrived  chan struct{}
}

// New starts a receiver checking signatures under secret; it stops with the test.
func New(t testing.TB, secret []byte) *Receiver {
	r := &Receiver{secret: secret, arrived: make(chan struct{}, 1)}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(func() { r.Release(); r.Close() })
	return r
}

// FailNext answers the next n posts 503.
func (r *Receiver) FailNext(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failNext = n
}

// Hang makes posts wait, unanswered, until Release.
func (r *Receiver) Hang() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hang == nil {
		r.hang = make(chan struct{})
	}
}

// Release answers the posts that hang, and the ones after them, again.
func (r *Receiver) Release() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hang != nil {
		close(r.hang)
		r.hang = nil
	}
}

// Events are the events accepted so far, in arrival order.
func (r *Receiver) Events() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// Bad are the reasons posts were refused (bad signature, bad shape); a test wants none.
func (r *Receiver) Bad() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.bad...)
}

// Attempts counts every post, accepted or not.
func (r *Receiver) Attempts() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts
}

// WaitFor waits until cond holds over the accepted events, or fails the test after timeout.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, what string, cond func([]Event) bool) []Event {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if es := r.Events(); cond(es) {
			return es
		}
		select {
		case <-r.arrived:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("after %s: %s; the receiver holds %d events: %v (refused: %v)", timeout, what, len(r.Events()), IDs(r.Events()), r.Bad())
		}
	}
}

// IDs are the events' ids.
func IDs(es []Event) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	r.mu.Lock()
	r.attempts++
	hang := r.hang
	fail := r.failNext > 0
	if fail {
		r.failNext--
	}
	r.mu.Unlock()
	if hang != nil {
		select {
		case <-hang:
		case <-req.Context().Done():
			return
		}
	}
	if err != nil || fail {
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	ev, problem := r.check(req, body)
	r.mu.Lock()
	if problem != "" {
		r.bad = append(r.bad, problem)
	} else {
		r.events = append(r.events, ev)
	}
	r.mu.Unlock()
	select {
	case r.arrived <- struct{}{}:
	default:
	}
	if problem != "" {
		http.Error(w, problem, http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// check verifies the signature and the CloudEvents shape (cloudevents/spec.md required attributes; the JSON
// format's data member).
func (r *Receiver) check(req *http.Request, body []byte) (Event, string) {
	if !notify.Verify(r.secret, body, req.Header.Get(notify.SignatureHeader)) {
		return Event{}, "bad signature"
	}
	if ct := req.Header.Get("Content-Type"); ct != notify.ContentType {
		return Event{}, "content type " + ct
	}
	var ce struct {
		SpecVersion, ID, Source, Type, Subject, Time, DataContentType string
		Data                                                          json.RawMessage
	}
	if err := json.Unmarshal(body, &ce); err != nil {
		return Event{}, "not JSON: " + err.Error()
	}
	if ce.SpecVersion != "1.0" || ce.ID == "" || ce.Source == "" || ce.DataContentType != "application/json" {
		return Event{}, "missing attributes: " + string(body)
	}
	if _, err := time.Parse(time.RFC3339Nano, ce.Time); err != nil {
		return Event{}, "time: " + err.Error()
	}
	fe := &pb.FindingEvent{}
	if err := protojson.Unmarshal(ce.Data, fe); err != nil {
		return Event{}, "data is not a FindingEvent: " + err.Error()
	}
	want := notify.TypeOpened
	if fe.GetKind() == pb.FindingEventKind_FINDING_EVENT_KIND_RESOLVED {
		want = notify.TypeResolved
	}
	if ce.Type != want || ce.ID != notify.EventID(fe) || ce.Subject != fe.GetFinding().GetGroupId() {
		return Event{}, "type, id or subject disagree with the data: " + string(body)
	}
	return Event{ID: ce.ID, Type: ce.Type, Source: ce.Source, Subject: ce.Subject, Finding: fe, Body: body}, ""
}
