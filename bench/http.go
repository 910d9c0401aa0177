package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	hresp, err := t.send(ctx, route, req)
	if err != nil {
		return err
	}
	answer, err := io.ReadAll(hresp.Body)
	hresp.Body.Close() // read to the end first: only then is the connection reused
	if err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	if hresp.StatusCode != http.StatusOK {
		return statusError(hresp.StatusCode, answer)
	}
	return protojson.Unmarshal(answer, resp)
}

// statusError is the gRPC status of an error answer: the google.rpc.Status it holds, or UNKNOWN with the HTTP
// status and the start of the body when it holds none.
func statusError(httpStatus int, body []byte) error {
	var st spb.Status
	if err := protojson.Unmarshal(body, &st); err != nil || st.GetCode() == 0 {
		return status.Error(codes.Unknown, fmt.Sprintf("HTTP %d: %.200s", httpStatus, body))
	}
	return status.ErrorProto(&st)
}

// EffectiveGroups reads the newline-delimited JSON stream to its end, decoding every message; an error line
// (alone, with its HTTP status, when the call fails before its first message) becomes its gRPC status.
func (t *httpTarget) EffectiveGroups(ctx context.Context, r *pb.EffectiveGroupsRequest) error {
	hresp, err := t.send(ctx, "/v1/effectiveGroups", r)
	if err != nil {
		return err
	}
	defer hresp.Body.Close()
	lines := bufio.NewScanner(hresp.Body)
	lines.Buffer(make([]byte, 0, 64<<10), 64<<20)
	for lines.Scan() {
		var line struct {
			Result json.RawMessage `json:"result"`
			Error  json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(lines.Bytes(), &line); err != nil {
			return status.Error(codes.Unknown, fmt.Sprintf("HTTP %d: %.200s", hresp.StatusCode, lines.Bytes()))
		}
		if line.Error != nil {
			return statusError(hresp.StatusCode, line.Error)
		}
		if err := protojson.Unmarshal(line.Result, &pb.EffectiveGroupsResponse{}); err != nil {
			return err
		}
	}
	if err := lines.Err(); err != nil {
		return status.Error(codes.Unavailable, err.Error())
	}
	if hresp.StatusCode != http.StatusOK {
		return status.Error(codes.Unknown, fmt.Sprintf("HTTP %d without an error line", hresp.StatusCode))
	}
	return nil
}

// send posts req as protobuf JSON to route.
func (t *httpTarget) send(ctx context.Context, route string, req proto.Message) (*http.Response, error) {
	body, err := protojson.Marshal(req)
	if err != nil {
		return nil, err
	}
	return t.sendBytes(ctx, route, body)
}

// sendBytes posts a JSON body to route.
func (t *httpTarget) sendBytes(ctx context.Context, route string, body []byte) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, t.base+route, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	if t.auth != "" {
		hreq.Header.Set("Authorization", t.auth)
	}
	hresp, err := t.client.Do(hreq)
	if err != nil {
		return nil, status.Error(codes.Unavailable, err.Error())
	}
	return hresp, nil
}
