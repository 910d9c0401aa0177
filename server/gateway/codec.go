package gateway

import (
	"bytes"
	"context"
	"io"
	"net/http"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// marshaler is protojson with lowerCamelCase names (the proto JSON mapping: groupId, entraVerdict) and every
// field emitted, zero values and empty lists included: a workflow reads body('check')?['isMember'] and expects
// false, not a missing property.
func marshaler() runtime.Marshaler {
	return &ndjsonMarshaler{JSONPb: runtime.JSONPb{
		MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
		UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
	}}
}

// startStream makes a Watch or a WatchFindings live: its 200 goes out as soon as the server has accepted the watch (sent its
// headers), before the first change, which may be long in coming (an HTTP client that sees no status by then gives
// up), and every change is flushed as it comes. grpc-gateway calls it with a nil message when a stream starts (and
// with each message, ignored here). A watch that fails before starting has no headers, so its error still gets its
// own HTTP status. Other streams stay buffered (see flushControl).
func startStream(ctx context.Context, w http.ResponseWriter, msg proto.Message) error {
	if msg != nil {
		return nil
	}
	if method, _ := runtime.RPCMethod(ctx); method != pb.DirectoryService_Watch_FullMethodName && method != pb.DecisionService_WatchFindings_FullMethodName {
		return nil
	}
	if md, ok := runtime.ServerMetadataFromContext(ctx); !ok || md.HeaderMD == nil {
		return nil
	}
	if fc, ok := w.(*flushControl); ok {
		fc.live = true
	}
	w.Header().Set("Content-Type", streamContentType)
	w.WriteHeader(http.StatusOK)
	_ = http.NewResponseController(w).Flush()
	return nil
}

// flushControl keeps grpc-gateway from flushing after every message of a stream, except for a Watch or a
// WatchFindings (live). The
// other streams (EffectiveMembers, Audit, ExportSnapshot, …) produce their messages at once, so flushing each one
// only costs a write system call apiece: net/http writes them as its buffer fills, and the last when the stream
// ends. Flushing per message made a one-message stream three writes (status, message, end) instead of one.
type flushControl struct {
	http.ResponseWriter
	live bool
}

func (f *flushControl) Flush() {
	if f.live {
		_ = http.NewResponseController(f.ResponseWriter).Flush()
	}
}

func (f *flushControl) FlushError() error {
	if f.live {
		return http.NewResponseController(f.ResponseWriter).Flush()
	}
	return nil
}

// Unwrap gives http.ResponseController the underlying writer for everything else.
func (f *flushControl) Unwrap() http.ResponseWriter { return f.ResponseWriter }

// The answers name their charset, though JSON is always UTF-8 (RFC 8259): Windows PowerShell 5.1's
// Invoke-RestMethod reads a body without one as ISO-8859-1, and a display name such as "Zoë" would come out
// garbled. PowerShell 7 and Logic Apps compare the media type alone.
const (
	jsonContentType   = "application/json; charset=utf-8"
	streamContentType = "application/x-ndjson; charset=utf-8"
)

// ndjsonMarshaler labels server streams as newline-delimited JSON, one {"result": …} object per line, and
// writes compact JSON: protojson puts a space after some separators, differently in each build, on purpose, so
// that nobody relies on its bytes; the answers of an HTTP API are compared and quoted in documentation, so they
// are compacted to one stable form.
type ndjsonMarshaler struct{ runtime.JSONPb }

func (*ndjsonMarshaler) ContentType(any) string       { return jsonContentType }
func (*ndjsonMarshaler) StreamContentType(any) string { return streamContentType }

func (m *ndjsonMarshaler) Marshal(v any) ([]byte, error) {
	b, err := m.JSONPb.Marshal(v)
	if err != nil {
		return nil, err
	}
	return compact(b), nil
}

// NewDecoder reads a request body. A unary request's body is one JSON object: it is read whole (the body limit
// bounds it) and handed to protojson at once, which costs half of what grpc-gateway's decoder does (that one
// scans the body with encoding/json first, to find where the object ends). A body that is not one message (a
// client stream's objects one after another, or bad JSON) goes to grpc-gateway's decoder after all, which splits
// the objects and words the error.
func (m *ndjsonMarshaler) NewDecoder(r io.Reader) runtime.Decoder {
	return &bodyDecoder{r: r, m: m}
}

type bodyDecoder struct {
	r    io.Reader
	m    *ndjsonMarshaler
	read bool
	dec  runtime.Decoder // set once the body has gone to grpc-gateway's decoder
}

func (d *bodyDecoder) Decode(v any) error {
	if d.dec != nil {
		return d.dec.Decode(v)
	}
	msg, ok := v.(proto.Message)
	if !ok || d.read {
		d.dec = d.m.JSONPb.NewDecoder(d.r)
		return d.dec.Decode(v)
	}
	d.read = true
	body, err := io.ReadAll(d.r)
	if err != nil {
		return err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return io.EOF
	}
	if err := d.m.UnmarshalOptions.Unmarshal(body, msg); err == nil {
		return nil
	}
	proto.Reset(msg)
	d.dec = d.m.JSONPb.NewDecoder(bytes.NewReader(body))
	return d.dec.Decode(v)
}

// compact drops the spaces protojson puts between tokens, in place. It is not json.Compact, which validates as
// it goes and cost 4% of an HTTP call's CPU: protojson's output is valid JSON whose only whitespace outside
// strings is those single spaces (it writes no newlines or indentation without Multiline).
func compact(b []byte) []byte {
	out := b[:0]
	inString, escaped := false, false
	for _, c := range b {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && c == ' ':
			continue
		}
		out = append(out, c)
	}
	return out
}
