package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// httpTarget sends the load to the HTTP/JSON API (SPEC §11) the way a tuned client would: keep-alive
// connections, one idle connection kept per worker (net/http keeps only 2 per host by default, so most requests
// would open a new connection), no compression.
type httpTarget struct {
	base, auth string
	client     *http.Client
}

func newHTTPTarget(base, token string, workers int) *httpTarget {
	transport := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        workers,
		MaxIdleConnsPerHost: workers,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	t := &httpTarget{base: base, client: &http.Client{Transport: transport}}
	if token != "" {
		t.auth = "Bearer " + token
	}
	return t
}

func (t *httpTarget) CanAddMember(ctx context.Context, r *pb.CanAddMemberRequest) error {
	return t.post(ctx, "/v1/canAddMember", r, &pb.CanAddMemberResponse{})
}

func (t *httpTarget) CheckMembership(ctx context.Context, r *pb.CheckMembershipRequest) error {
	return t.post(ctx, "/v1/checkMembership", r, &pb.CheckMembershipResponse{})
}

func (t *httpTarget) CheckBatch(ctx context.Context, r *pb.CheckBatchRequest) error {
	return t.post(ctx, "/v1/checkBatch", r, &pb.CheckBatchResponse{})
}

func (t *httpTarget) WriteChanges(ctx context.Context, r *pb.WriteChangesRequest) error {
	return t.post(ctx, "/v1/writeChanges", r, &pb.WriteChangesResponse{})
}

func (t *httpTarget) Close() error {
	t.client.CloseIdleConnections()
	return nil
}

// post sends req as protobuf JSON and decodes the answer into resp; an error answer becomes its gRPC status.
func (t *httpTarget) post(ctx context.Context, route string, req, resp proto.Message) error {
	body, err := protojson.Marshal(req)
	if err != nil {
		return err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+route, bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if t.auth != "" {
		hreq.Header.Set("Authorization", t.auth)
	}
	hresp, err := t.client.Do(hreq)
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	answer, err := io.ReadAll(hresp.Body)
	hresp.Body.Close() // read to the end first: only then is the connection reused
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	if hresp.StatusCode != http.StatusOK {
		var st spb.Status
		if err := protojson.Unmarshal(answer, &st); err != nil || st.GetCode() == 0 {
			return status.Error(codes.Unknown, fmt.Sprintf("HTTP %d: %.200s", hresp.StatusCode, answer))
		}
		return status.ErrorProto(&st)
	}
	return protojson.Unmarshal(answer, resp)
}
