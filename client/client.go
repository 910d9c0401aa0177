// Package client is the Go client of groupgate, used by the groupgate CLI. It dials a server, exposes the
// generated service clients, and adds typed helpers for the common questions. Errors are gRPC status errors:
// status.Code(err) (or Code) tells NOT_FOUND from INVALID_ARGUMENT and the rest.
package client

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"github.com/groupgate/groupgate/internal/listen"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// Options configure a connection.
type Options struct {
	// TLS, when set, secures the connection; otherwise it is plaintext (loopback or unix socket use). Over a
	// unix socket the name verified is "localhost" (gRPC's authority for unix targets) unless the credentials
	// set another.
	TLS credentials.TransportCredentials
	// Token, when set, is sent as "authorization: Bearer <token>" on every call.
	Token string
	// DialOptions are added to the connection's.
	DialOptions []grpc.DialOption
}

// Client is a connection to a groupgate server.
type Client struct {
	conn      *grpc.ClientConn
	Decisions pb.DecisionServiceClient
	Directory pb.DirectoryServiceClient
	Health    healthpb.HealthClient
}

// Dial connects to addr: host:port, or a unix domain socket in gRPC's target syntax, unix:///path/to.sock
// (also unix:/abs/path and unix:relative/path). The connection is made lazily, on the first call.
func Dial(addr string, opts Options) (*Client, error) {
	if strings.HasPrefix(addr, "unix:") {
		// gRPC would accept unix://name and fail only on the first call; say at once what to write instead.
		if _, err := listen.Parse(addr); err != nil {
			return nil, fmt.Errorf("address %q: %w", addr, err)
		}
	}
	creds := opts.TLS
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	dialOpts := []grpc.DialOption{grpc.WithTransportCredentials(creds)}
	if opts.Token != "" {
		dialOpts = append(dialOpts, grpc.WithPerRPCCredentials(bearer{token: opts.Token}))
	}
	conn, err := grpc.NewClient(addr, append(dialOpts, opts.DialOptions...)...)
	if err != nil {
		return nil, err
	}
	return New(conn), nil
}

// New wraps an existing connection.
func New(conn *grpc.ClientConn) *Client {
	return &Client{
		conn:      conn,
		Decisions: pb.NewDecisionServiceClient(conn),
		Directory: pb.NewDirectoryServiceClient(conn),
		Health:    healthpb.NewHealthClient(conn),
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection.
func (c *Client) Conn() *grpc.ClientConn { return c.conn }

// Code is the gRPC status code of an error returned by this package (codes.OK for nil).
func Code(err error) codes.Code { return status.Code(err) }

// CanAddMember asks whether actor may add member to group.
func (c *Client) CanAddMember(ctx context.Context, tenant, group, member, actor string) (*pb.Decision, error) {
	resp, err := c.Decisions.CanAddMember(ctx, &pb.CanAddMemberRequest{TenantId: tenant, GroupId: group, MemberId: member, ActorId: actor})
	return resp.GetDecision(), err
}

// CheckMembership asks whether principal is a member of group at any depth, and by which shortest path.
func (c *Client) CheckMembership(ctx context.Context, tenant, group, principal string) (*pb.CheckMembershipResponse, error) {
	return c.Decisions.CheckMembership(ctx, &pb.CheckMembershipRequest{TenantId: tenant, GroupId: group, PrincipalId: principal})
}

// EachMember streams the effective members of a group, calling fn for each batch until the stream ends or fn
// fails.
func (c *Client) EachMember(ctx context.Context, req *pb.EffectiveMembersRequest, fn func(*pb.EffectiveMembersResponse) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream on the server if fn stops early
	stream, err := c.Decisions.EffectiveMembers(ctx, req)
	if err != nil {
		return err
	}
	return each(stream, fn)
}

// EachGroup streams the effective groups of a principal (every group it belongs to through any level of
// nesting), calling fn for each batch until the stream ends or fn fails.
func (c *Client) EachGroup(ctx context.Context, req *pb.EffectiveGroupsRequest, fn func(*pb.EffectiveGroupsResponse) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream on the server if fn stops early
	stream, err := c.Decisions.EffectiveGroups(ctx, req)
	if err != nil {
		return err
	}
	return each(stream, fn)
}

// each receives a server stream's messages until it ends (nil) or fails, or fn fails.
func each[T any](stream grpc.ServerStreamingClient[T], fn func(*T) error) error {
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(resp); err != nil {
			return err
		}
	}
}

// Audit streams today's findings, calling fn for each.
func (c *Client) Audit(ctx context.Context, req *pb.AuditRequest, fn func(f *pb.Finding, revision int64) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.Decisions.Audit(ctx, req)
	if err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, f := range resp.GetFindings() {
			if err := fn(f, resp.GetRevision()); err != nil {
				return err
			}
		}
	}
}

// WatchFindings streams the findings that hold at the starting revision, then each later revision's
// OPENED/RESOLVED events (SPEC §16), calling fn for every message until the stream ends, fails, or fn fails. It
// runs until ctx ends: the server never ends a healthy stream by itself.
func (c *Client) WatchFindings(ctx context.Context, req *pb.WatchFindingsRequest, fn func(*pb.WatchFindingsResponse) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream on the server if fn stops early
	stream, err := c.Decisions.WatchFindings(ctx, req)
	if err != nil {
		return err
	}
	return each(stream, fn)
}

// bearer sends a bearer token with every call.
type bearer struct{ token string }

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.token}, nil
}

// RequireTransportSecurity is false so that a token can be used over plaintext loopback or a unix socket; the
// server refuses plaintext on other addresses.
func (b bearer) RequireTransportSecurity() bool { return false }

// TLSFromFiles builds client TLS credentials: caFile is the CA that signed the server's certificate (empty: the
// system roots); certFile and keyFile, when set, are the client certificate for mTLS.
func TLSFromFiles(caFile, certFile, keyFile, serverName string) (credentials.TransportCredentials, error) {
	cfg, err := TLSConfigFromFiles(caFile, certFile, keyFile, serverName)
	if err != nil {
		return nil, err
	}
	return credentials.NewTLS(cfg), nil
}

// TLSConfigFromFiles is the TLS configuration TLSFromFiles makes credentials of, for a caller to adjust first.
func TLSConfigFromFiles(caFile, certFile, keyFile, serverName string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: serverName}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificates", caFile)
		}
	}
	if certFile != "" || keyFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

// importPartObjects is how many users, groups and service principals one ImportSnapshot message carries.
const importPartObjects = 20_000

// ImportSnapshot replaces a tenant with a snapshot, streamed in parts that stay far below the server's message
// size limit, and returns the new revision. expectedRevision, when set, must be the tenant's revision (0 for a
// tenant that does not exist yet).
func (c *Client) ImportSnapshot(ctx context.Context, snap *pb.Snapshot, expectedRevision *int64) (int64, error) {
	return c.ImportSnapshotRound(ctx, snap, expectedRevision, nil)
}

// ImportSnapshotRound is ImportSnapshot for a round of groupgate sync, which the server records (GetStatus,
// groupgate_sync_lag_seconds).
func (c *Client) ImportSnapshotRound(ctx context.Context, snap *pb.Snapshot, expectedRevision *int64, round *pb.SyncRound) (int64, error) {
	stream, err := c.Directory.ImportSnapshot(ctx)
	if err != nil {
		return 0, err
	}
	first := &pb.Snapshot{TenantId: snap.GetTenantId(), Settings: snap.GetSettings(), Labels: snap.GetLabels(),
		RoleDefinitions: snap.GetRoleDefinitions()}
	parts := []*pb.Snapshot{first}
	cur, n := first, 0
	next := func() {
		if n >= importPartObjects {
			cur, n = &pb.Snapshot{}, 0
			parts = append(parts, cur)
		}
		n++
	}
	for _, u := range snap.GetUsers() {
		next()
		cur.Users = append(cur.Users, u)
	}
	for _, sp := range snap.GetServicePrincipals() {
		next()
		cur.ServicePrincipals = append(cur.ServicePrincipals, sp)
	}
	for _, g := range snap.GetGroups() {
		next()
		n += len(g.GetMembers()) / 8 // large groups count for more: keep messages small
		cur.Groups = append(cur.Groups, g)
	}
	for _, u := range snap.GetAdministrativeUnits() {
		next()
		n += len(u.GetMembers()) / 8
		cur.AdministrativeUnits = append(cur.AdministrativeUnits, u)
	}
	for _, a := range snap.GetRoleAssignments() {
		next()
		cur.RoleAssignments = append(cur.RoleAssignments, a)
	}
	for i, p := range parts {
		req := &pb.ImportSnapshotRequest{Snapshot: p}
		if i == 0 {
			req.TenantId = snap.GetTenantId()
			req.ExpectedRevision = expectedRevision
			req.SyncRound = round
		}
		if err := stream.Send(req); err != nil {
			if _, rerr := stream.CloseAndRecv(); rerr != nil {
				return 0, rerr // the server's reason, rather than io.EOF
			}
			return 0, err
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return 0, err
	}
	return resp.GetRevision(), nil
}
