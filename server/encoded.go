package server

import (
	"context"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// encodedMessage is an answer its handler has already encoded in the protobuf wire format. EffectiveMembers
// encodes its pages this way, in the goroutine that walks the group, straight from the directory's nodes: a
// million-member answer built as EffectiveMember structs and then marshalled cost about twice the CPU of
// sending the same messages precomputed (`groupgate bench --stream`), the structs' allocation and the
// reflective marshaller's sizing pass included.
type encodedMessage struct {
	data []byte
	// pool, when set, is where data came from (a memberPager page): gRPC's transport gives it back once it has
	// written the bytes, so that the next page is written into memory already mapped and in cache.
	pool mem.BufferPool
	// decoded makes the message it encodes, for the in-process streams of the HTTP/JSON gateway, which hand
	// messages over rather than bytes.
	decoded func() proto.Message
}

func (m *encodedMessage) message() (proto.Message, error) {
	msg := m.decoded()
	return msg, proto.Unmarshal(m.data, msg)
}

// codec is gRPC's protobuf codec that sends an encodedMessage's bytes as they are.
type codec struct{ proto encoding.CodecV2 }

func newCodec() codec { return codec{encoding.GetCodecV2(grpcproto.Name)} }

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*encodedMessage); ok {
		if m.pool != nil {
			return mem.BufferSlice{mem.NewBuffer(&m.data, m.pool)}, nil
		}
		return mem.BufferSlice{mem.SliceBuffer(m.data)}, nil
	}
	return c.proto.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }
func (c codec) Name() string                                { return c.proto.Name() }

// memberBytes is the room one encoded EffectiveMember takes in a page before it grows: a generated user (id of
// 9 bytes, kind, user type, depth) takes 19.
const memberBytes = 24

// appendEffectiveMember appends an EffectiveMembersResponse.members entry for n at depth: the bytes
// proto.Marshal writes for the EffectiveMember that setEffectiveMember fills (TestEncodedMembersMatchMarshal).
func appendEffectiveMember(b []byte, n *directory.Node, depth int) []byte {
	var kind pb.ObjectKind
	var userType pb.UserType
	switch n.Kind() {
	case directory.KindUser:
		kind, userType = pb.ObjectKind_OBJECT_KIND_USER, n.UserType()
	case directory.KindGroup:
		kind = pb.ObjectKind_OBJECT_KIND_GROUP
	case directory.KindServicePrincipal:
		kind = pb.ObjectKind_OBJECT_KIND_SERVICE_PRINCIPAL
	}
	id := n.ID()
	if l := len(id); l > 0 && l < 100 && kind != 0 && uint32(userType) < 128 && uint(depth-1) < 127 {
		// Every length and value fits one byte (a generated id, an Entra GUID, depths below 128): the bytes the
		// general path below writes, without its varint loops and size sums.
		size := 2 + l + 2 + 2
		if userType != 0 {
			size += 2
		}
		b = append(b, 1<<3|byte(protowire.BytesType), byte(size), 1<<3|byte(protowire.BytesType), byte(l))
		b = append(b, id...)
		b = append(b, 2<<3|byte(protowire.VarintType), byte(kind))
		if userType != 0 {
			b = append(b, 3<<3|byte(protowire.VarintType), byte(userType))
		}
		return append(b, 4<<3|byte(protowire.VarintType), byte(depth))
	}
	size := 0
	if id != "" {
		size += 1 + protowire.SizeBytes(len(id))
	}
	if kind != 0 {
		size += 1 + protowire.SizeVarint(uint64(kind))
	}
	if userType != 0 {
		size += 1 + protowire.SizeVarint(uint64(userType))
	}
	if depth != 0 {
		size += 1 + protowire.SizeVarint(uint64(int64(int32(depth))))
	}
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	if id != "" {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, id)
	}
	if kind != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(kind))
	}
	if userType != 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(userType))
	}
	if depth != 0 {
		b = protowire.AppendTag(b, 4, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(int32(depth))))
	}
	return b
}

// appendRevision ends an EffectiveMembersResponse page with its revision field.
func appendRevision(b []byte, revision int64) []byte {
	if revision == 0 {
		return b
	}
	b = protowire.AppendTag(b, 2, protowire.VarintType)
	return protowire.AppendVarint(b, uint64(revision))
}

// streamMembers streams EffectiveMembersResponse pages of pageSize members, encoded by memberPager, through
// stream; produce runs in its own goroutine, ahead of the sends by a few pages (see streamPages, which it
// mirrors for encoded pages).
func streamMembers(ctx context.Context, stream grpc.ServerStream, pageSize int, revision int64, produce func(*memberPager)) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	p := newMemberPager(ctx, pageSize, revision)
	go func() {
		defer close(p.pages)
		produce(p)
		if p.items > 0 {
			select {
			case p.pages <- appendRevision(p.page, p.revision):
			case <-ctx.Done():
			}
		}
	}()
	send := func(page []byte) error {
		return stream.SendMsg(&encodedMessage{data: page, pool: p.pool, decoded: func() proto.Message { return &pb.EffectiveMembersResponse{} }})
	}
	sent := false
	for page := range p.pages {
		if err := send(page); err != nil {
			return err
		}
		sent = true
		if err := ctx.Err(); err != nil {
			return err // the client has gone: stop promptly (the deferred cancel stops the walk)
		}
	}
	if !sent {
		return send(appendRevision(nil, revision))
	}
	return nil
}

// memberPager collects encoded members into pages; it is used by the producer's goroutine only. Each page is a
// buffer of bytes without pointers from gRPC's buffer pool, which gRPC writes out as it is and then puts back
// (encodedMessage.pool), as it does with the buffers its own codec marshals into. Pages allocated afresh (1,101 of
// ~20 KiB for the large tenant's top group) were fresh memory each stream: the encoder's first stores into them
// were the largest share of the walk's CPU profile after the nodes' loads (page faults, most likely: the machine
// has no hardware counters to tell), and the garbage brought the 600 MB heap's collections sooner.
type memberPager struct {
	ctx                context.Context
	pages              chan []byte
	page               []byte
	items, size, limit int
	revision           int64
	pool               mem.BufferPool
	sink               byte
}

func newMemberPager(ctx context.Context, pageSize int, revision int64) *memberPager {
	return &memberPager{ctx: ctx, pages: make(chan []byte, 4), size: pageSize, limit: min(pageSize, firstPageSize),
		revision: revision, pool: mem.DefaultBufferPool()}
}

// prefetchIDs reads the first byte of each node's id in a loop of a few instructions, so that the loads of a
// batch's ids, scattered over the heap, overlap; encoding them afterwards copies from cache instead of waiting on
// each load in turn (measured with bench --stream: README, Performance).
func (p *memberPager) prefetchIDs(nodes []*directory.Node) {
	var x byte
	for _, n := range nodes {
		if id := n.ID(); id != "" {
			x ^= id[0]
		}
	}
	p.sink = x // kept, so that the compiler keeps the loads
}

// add appends n at depth and hands the page over when it is full; false means the call has ended.
func (p *memberPager) add(n *directory.Node, depth int) bool {
	if p.page == nil {
		p.page = (*p.pool.Get(p.limit*memberBytes + 16))[:0]
	}
	p.page = appendEffectiveMember(p.page, n, depth)
	if p.items++; p.items < p.limit {
		return true
	}
	select {
	case p.pages <- appendRevision(p.page, p.revision):
	case <-p.ctx.Done():
		return false
	}
	p.limit, p.items, p.page = p.size, 0, nil
	return true
}
