package spanexport

import (
	"math"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The OTLP messages' field numbers (opentelemetry-proto's trace.proto, resource.proto and common.proto, as
// go.opentelemetry.io/proto/otlp v1.11.1 has them). Fields are written in field-number order, as protobuf-go
// marshals them, so that the request is byte for byte the official exporter's.
const (
	resourceSpansResource   protowire.Number = 1 // Resource
	resourceSpansScopeSpans protowire.Number = 2 // repeated ScopeSpans
	resourceSpansSchemaURL  protowire.Number = 3 // string

	resourceAttributes protowire.Number = 1 // repeated KeyValue

	scopeSpansScope     protowire.Number = 1 // InstrumentationScope
	scopeSpansSpans     protowire.Number = 2 // repeated Span
	scopeSpansSchemaURL protowire.Number = 3 // string

	scopeName       protowire.Number = 1 // string
	scopeVersion    protowire.Number = 2 // string
	scopeAttributes protowire.Number = 3 // repeated KeyValue

	spanTraceID                protowire.Number = 1  // bytes
	spanSpanID                 protowire.Number = 2  // bytes
	spanTraceState             protowire.Number = 3  // string
	spanParentSpanID           protowire.Number = 4  // bytes
	spanName                   protowire.Number = 5  // string
	spanKind                   protowire.Number = 6  // enum SpanKind
	spanStartTimeUnixNano      protowire.Number = 7  // fixed64
	spanEndTimeUnixNano        protowire.Number = 8  // fixed64
	spanAttributes             protowire.Number = 9  // repeated KeyValue
	spanDroppedAttributesCount protowire.Number = 10 // uint32
	spanEvents                 protowire.Number = 11 // repeated Event
	spanDroppedEventsCount     protowire.Number = 12 // uint32
	spanLinks                  protowire.Number = 13 // repeated Link
	spanDroppedLinksCount      protowire.Number = 14 // uint32
	spanStatus                 protowire.Number = 15 // Status
	spanFlags                  protowire.Number = 16 // fixed32

	eventTimeUnixNano           protowire.Number = 1 // fixed64
	eventName                   protowire.Number = 2 // string
	eventAttributes             protowire.Number = 3 // repeated KeyValue
	eventDroppedAttributesCount protowire.Number = 4 // uint32

	linkTraceID                protowire.Number = 1 // bytes
	linkSpanID                 protowire.Number = 2 // bytes
	linkAttributes             protowire.Number = 4 // repeated KeyValue (3, trace_state, tracetransform leaves empty)
	linkDroppedAttributesCount protowire.Number = 5 // uint32
	linkFlags                  protowire.Number = 6 // fixed32

	statusMessage protowire.Number = 2 // string
	statusCode    protowire.Number = 3 // enum StatusCode

	keyValueKey   protowire.Number = 1 // string
	keyValueValue protowire.Number = 2 // AnyValue

	anyValueString protowire.Number = 1 // oneof: string
	anyValueBool   protowire.Number = 2 // oneof: bool
	anyValueInt    protowire.Number = 3 // oneof: int64
	anyValueDouble protowire.Number = 4 // oneof: double
	anyValueArray  protowire.Number = 5 // oneof: ArrayValue
	anyValueKvlist protowire.Number = 6 // oneof: KeyValueList
	anyValueBytes  protowire.Number = 7 // oneof: bytes

	arrayValueValues   protowire.Number = 1 // repeated AnyValue
	keyValueListValues protowire.Number = 1 // repeated KeyValue
)

// The bytes left for a length-delimited field's length before its content is written, by what the content
// usually weighs: 1 byte holds up to 127, 2 up to 16383, 3 up to 2 MiB. A content of another size is moved once
// its length is known (close), which is rare for these guesses.
const (
	reserveSmall  = 1 // key-values, values, events, links, status, scope
	reserveMedium = 2 // a span with its attributes, a resource
	reserveLarge  = 3 // a scope's spans
)

// maxKeptBuffer is the largest encoding buffer kept for the next export: a batch far larger than usual (a huge
// attribute) should not pin its memory for the life of the process.
const maxKeptBuffer = 16 << 20

// scopeKey groups spans as tracetransform.Spans does: by the resource's attribute.Distinct (equal attribute
// sets, whatever the *resource.Resource) and the instrumentation scope.
type scopeKey struct {
	res   attribute.Distinct
	scope instrumentation.Scope
}

type resourceGroup struct {
	key attribute.Distinct
	// The first span's resource: tracetransform takes the resource message and schema URL from the first span
	// of each attribute set.
	res         *resource.Resource
	first, last int32 // its scope groups, linked by scopeGroup.next, in the order they first appeared
	start, end  int   // its encoding in encoder.buf
}

type scopeGroup struct {
	key         scopeKey
	next        int32 // the resource's next scope group, or -1
	first, last int32 // its spans, linked by encoder.next, in batch order
}

// encoder turns a batch of spans into ResourceSpans messages. Everything in it is reused from batch to batch,
// so that encoding a batch allocates nothing once the buffers have grown to the batches' size.
type encoder struct {
	buf       []byte
	resources []resourceGroup
	scopes    []scopeGroup
	next      []int32 // next[i]: the next span of span i's scope group, or -1
	lastScope int32   // the last scope group found: consecutive spans mostly share theirs
	msgs      []*tracepb.ResourceSpans
}

// encode groups spans by resource and instrumentation scope and encodes each resource's ResourceSpans, in the
// order tracetransform.Spans builds them (the resources in the order they first appear: tracetransform's
// come out of a map, in no order). The messages are valid until release.
func (e *encoder) encode(spans []sdktrace.ReadOnlySpan) []*tracepb.ResourceSpans {
	if len(spans) == 0 {
		return nil
	}
	e.group(spans)
	if len(e.resources) == 0 {
		return nil // only nil spans
	}
	e.buf = e.buf[:0]
	for r := range e.resources {
		e.resourceSpans(&e.resources[r], spans)
	}
	for len(e.msgs) < len(e.resources) {
		e.msgs = append(e.msgs, new(tracepb.ResourceSpans))
	}
	for r := range e.resources {
		rg := &e.resources[r]
		// The capacity is cut to the content so that nothing appending to the unknown fields could write
		// into the next resource's.
		e.msgs[r].ProtoReflect().SetUnknown(protoreflect.RawFields(e.buf[rg.start:rg.end:rg.end]))
	}
	return e.msgs[:len(e.resources)]
}

// release drops the references the last batch left (its messages' bytes, its resources and scopes) once the
// client is done with them, and empties the groups for the next batch; the buffers stay.
func (e *encoder) release() {
	for _, m := range e.msgs[:len(e.resources)] {
		m.ProtoReflect().SetUnknown(nil)
	}
	clear(e.resources)
	e.resources = e.resources[:0]
	clear(e.scopes)
	e.scopes = e.scopes[:0]
	if cap(e.buf) > maxKeptBuffer {
		e.buf = nil
	}
}

// group sorts the spans into resource and scope groups as tracetransform.Spans does: a span's scope group is
// found by (resource attribute set, scope); a new scope group joins its resource's, created if new.
func (e *encoder) group(spans []sdktrace.ReadOnlySpan) {
	if cap(e.next) < len(spans) {
		e.next = make([]int32, len(spans))
	}
	e.next = e.next[:len(spans)]
	e.lastScope = -1
	for i, sd := range spans {
		if sd == nil {
			continue
		}
		res := sd.Resource()
		k := scopeKey{res: res.Equivalent(), scope: sd.InstrumentationScope()}
		e.next[i] = -1
		if g := e.findScope(&k); g >= 0 {
			sg := &e.scopes[g]
			e.next[sg.last] = int32(i)
			sg.last = int32(i)
			continue
		}
		g := int32(len(e.scopes))
		if r := e.findResource(k.res); r < 0 {
			e.resources = append(e.resources, resourceGroup{key: k.res, res: res, first: g, last: g})
		} else {
			rg := &e.resources[r]
			e.scopes[rg.last].next = g
			rg.last = g
		}
		e.scopes = append(e.scopes, scopeGroup{key: k, next: -1, first: int32(i), last: int32(i)})
		e.lastScope = g
	}
}

// findScope is the index of k's scope group, or -1. The groups are searched in turn: a process has a few
// instrumentation scopes (groupgate: otelgrpc's, the server's, sync's and otelhttp's), and comparing a few keys is
// cheaper than hashing one.
func (e *encoder) findScope(k *scopeKey) int32 {
	if e.lastScope >= 0 && e.scopes[e.lastScope].key == *k {
		return e.lastScope
	}
	for g := range e.scopes {
		if e.scopes[g].key == *k {
			e.lastScope = int32(g)
			return int32(g)
		}
	}
	return -1
}

// findResource is the index of the resource group of attribute set d, or -1.
func (e *encoder) findResource(d attribute.Distinct) int32 {
	for r := range e.resources {
		if e.resources[r].key == d {
			return int32(r)
		}
	}
	return -1
}

// resourceSpans encodes a ResourceSpans' fields (the message's content, without its tag and length: that is
// what the client's marshalling writes).
func (e *encoder) resourceSpans(rg *resourceGroup, spans []sdktrace.ReadOnlySpan) {
	rg.start = len(e.buf)
	if rg.res != nil { // tracetransform.Resource: no message for a nil resource, an empty one for no attributes
		at := e.open(resourceSpansResource, reserveMedium)
		iter := rg.res.Iter()
		for iter.Next() {
			e.keyValue(resourceAttributes, iter.Attribute())
		}
		e.close(at, reserveMedium)
	}
	for g := rg.first; g >= 0; g = e.scopes[g].next {
		sg := &e.scopes[g]
		at := e.open(resourceSpansScopeSpans, reserveLarge)
		if sc := &sg.key.scope; *sc != (instrumentation.Scope{}) { // tracetransform: no message for the zero scope
			at := e.open(scopeSpansScope, reserveSmall)
			e.string(scopeName, sc.Name)
			e.string(scopeVersion, sc.Version)
			iter := sc.Attributes.Iter()
			for iter.Next() {
				e.keyValue(scopeAttributes, iter.Attribute())
			}
			e.close(at, reserveSmall)
		}
		for i := sg.first; i >= 0; i = e.next[i] {
			e.span(spans[i])
		}
		e.string(scopeSpansSchemaURL, sg.key.scope.SchemaURL)
		e.close(at, reserveLarge)
	}
	e.string(resourceSpansSchemaURL, rg.res.SchemaURL())
	rg.end = len(e.buf)
}

// span encodes a Span as a ScopeSpans' spans field, with the fields tracetransform's span sets.
func (e *encoder) span(sd sdktrace.ReadOnlySpan) {
	at := e.open(scopeSpansSpans, reserveMedium)
	sc := sd.SpanContext()
	tid, sid := sc.TraceID(), sc.SpanID()
	e.bytes(spanTraceID, tid[:])
	e.bytes(spanSpanID, sid[:])
	e.traceState(spanTraceState, sc.TraceState())
	parent := sd.Parent()
	if psid := parent.SpanID(); psid.IsValid() {
		e.bytes(spanParentSpanID, psid[:])
	}
	e.string(spanName, sd.Name())
	e.uvarint(spanKind, uint64(otlpSpanKind(sd.SpanKind())))
	e.fixed64(spanStartTimeUnixNano, unixNano(sd.StartTime()))
	e.fixed64(spanEndTimeUnixNano, unixNano(sd.EndTime()))
	for _, kv := range sd.Attributes() {
		e.keyValue(spanAttributes, kv)
	}
	e.uvarint(spanDroppedAttributesCount, uint64(clampUint32(sd.DroppedAttributes())))
	events := sd.Events()
	for i := range events {
		e.event(&events[i])
	}
	e.uvarint(spanDroppedEventsCount, uint64(clampUint32(sd.DroppedEvents())))
	links := sd.Links()
	for i := range links {
		e.link(&links[i])
	}
	e.uvarint(spanDroppedLinksCount, uint64(clampUint32(sd.DroppedLinks())))
	// tracetransform always sets a status, so the field is there even when empty (Unset, no message).
	status := sd.Status()
	st := e.open(spanStatus, reserveSmall)
	e.string(statusMessage, status.Description)
	e.uvarint(statusCode, uint64(otlpStatusCode(status.Code)))
	e.close(st, reserveSmall)
	// Never zero: the has-is-remote bit is always set.
	e.fixed32(spanFlags, spanFlagsWith(sc.TraceFlags(), parent))
	e.close(at, reserveMedium)
}

func (e *encoder) event(ev *sdktrace.Event) {
	at := e.open(spanEvents, reserveSmall)
	e.fixed64(eventTimeUnixNano, unixNano(ev.Time))
	e.string(eventName, ev.Name)
	for _, kv := range ev.Attributes {
		e.keyValue(eventAttributes, kv)
	}
	e.uvarint(eventDroppedAttributesCount, uint64(clampUint32(ev.DroppedAttributeCount)))
	e.close(at, reserveSmall)
}

// link encodes a Span.Link as tracetransform's links does: without the linked context's trace state (it sets no
// TraceState), with its flags and its own is-remote bit.
func (e *encoder) link(l *sdktrace.Link) {
	at := e.open(spanLinks, reserveSmall)
	tid, sid := l.SpanContext.TraceID(), l.SpanContext.SpanID()
	e.bytes(linkTraceID, tid[:])
	e.bytes(linkSpanID, sid[:])
	for _, kv := range l.Attributes {
		e.keyValue(linkAttributes, kv)
	}
	e.uvarint(linkDroppedAttributesCount, uint64(clampUint32(l.DroppedAttributeCount)))
	e.fixed32(linkFlags, spanFlagsWith(l.SpanContext.TraceFlags(), l.SpanContext))
	e.close(at, reserveSmall)
}

// keyValue encodes a KeyValue; its value is always there, if only as an empty AnyValue (tracetransform.KeyValue).
func (e *encoder) keyValue(num protowire.Number, kv attribute.KeyValue) {
	n, ok := scalarSize(kv.Value)
	if !ok {
		at := e.open(num, reserveSmall)
		e.string(keyValueKey, string(kv.Key))
		e.anyValue(keyValueValue, kv.Value)
		e.close(at, reserveSmall)
		return
	}
	// A scalar value, nearly every attribute: sized up front, the lengths are written before the contents, and
	// neither needs the room and the close of nested messages of unknown size.
	size := 1 + protowire.SizeBytes(n) // the value field
	if kv.Key != "" {
		size += 1 + protowire.SizeBytes(len(kv.Key))
	}
	e.buf = appendTag(e.buf, num, protowire.BytesType)
	e.buf = appendVarint(e.buf, uint64(size))
	e.string(keyValueKey, string(kv.Key))
	e.buf = appendTag(e.buf, keyValueValue, protowire.BytesType)
	e.buf = appendVarint(e.buf, uint64(n))
	e.scalar(kv.Value)
}

// scalarSize is the size of the AnyValue of a bool, int64, float64 or string value; ok is false for the other
// types.
func scalarSize(v attribute.Value) (n int, ok bool) {
	switch v.Type() {
	case attribute.BOOL:
		return 2, true
	case attribute.INT64:
		return 1 + protowire.SizeVarint(uint64(v.AsInt64())), true
	case attribute.FLOAT64:
		return 1 + 8, true
	case attribute.STRING:
		return 1 + protowire.SizeBytes(len(v.AsString())), true
	}
	return 0, false
}

// scalar encodes the AnyValue content of a value scalarSize sizes. The value is a oneof, whose member is written
// even when it is its type's zero value (false, 0, ""): a set oneof is always marshalled.
func (e *encoder) scalar(v attribute.Value) {
	switch v.Type() {
	case attribute.BOOL:
		e.buf = appendTag(e.buf, anyValueBool, protowire.VarintType)
		e.buf = append(e.buf, byte(protowire.EncodeBool(v.AsBool())))
	case attribute.INT64:
		e.buf = appendTag(e.buf, anyValueInt, protowire.VarintType)
		e.buf = appendVarint(e.buf, uint64(v.AsInt64()))
	case attribute.FLOAT64:
		e.buf = appendTag(e.buf, anyValueDouble, protowire.Fixed64Type)
		e.buf = protowire.AppendFixed64(e.buf, math.Float64bits(v.AsFloat64()))
	case attribute.STRING:
		e.buf = appendTag(e.buf, anyValueString, protowire.BytesType)
		e.buf = appendVarint(e.buf, uint64(len(v.AsString())))
		e.buf = append(e.buf, v.AsString()...)
	}
}

// anyValue encodes an AnyValue as tracetransform.Value builds it. The value is a oneof, whose member is written
// even when it is its type's zero value (an empty array, an empty byte slice): a set oneof is always marshalled.
func (e *encoder) anyValue(num protowire.Number, v attribute.Value) {
	if n, ok := scalarSize(v); ok {
		e.buf = appendTag(e.buf, num, protowire.BytesType)
		e.buf = appendVarint(e.buf, uint64(n))
		e.scalar(v)
		return
	}
	at := e.open(num, reserveSmall)
	switch v.Type() {
	case attribute.BYTESLICE:
		e.buf = appendTag(e.buf, anyValueBytes, protowire.BytesType)
		e.buf = protowire.AppendBytes(e.buf, v.AsByteSlice())
	case attribute.BOOLSLICE:
		arr := e.open(anyValueArray, reserveSmall)
		for _, b := range v.AsBoolSlice() {
			e.boolElem(b)
		}
		e.close(arr, reserveSmall)
	case attribute.INT64SLICE:
		arr := e.open(anyValueArray, reserveSmall)
		for _, n := range v.AsInt64Slice() {
			e.int64Elem(n)
		}
		e.close(arr, reserveSmall)
	case attribute.FLOAT64SLICE:
		arr := e.open(anyValueArray, reserveSmall)
		for _, f := range v.AsFloat64Slice() {
			e.float64Elem(f)
		}
		e.close(arr, reserveSmall)
	case attribute.STRINGSLICE:
		arr := e.open(anyValueArray, reserveSmall)
		for _, s := range v.AsStringSlice() {
			e.stringElem(s)
		}
		e.close(arr, reserveSmall)
	case attribute.SLICE:
		arr := e.open(anyValueArray, reserveSmall)
		for _, el := range v.AsSlice() {
			e.anyValue(arrayValueValues, el)
		}
		e.close(arr, reserveSmall)
	case attribute.MAP:
		kvl := e.open(anyValueKvlist, reserveSmall)
		for _, kv := range v.AsMap() {
			e.keyValue(keyValueListValues, kv)
		}
		e.close(kvl, reserveSmall)
	case attribute.EMPTY:
		// An AnyValue with no value.
	default:
		// A type this version does not know: tracetransform says so in a string.
		e.buf = appendTag(e.buf, anyValueString, protowire.BytesType)
		e.buf = protowire.AppendString(e.buf, "INVALID")
	}
	e.close(at, reserveSmall)
}

// The elements of an ArrayValue of a primitive slice: each an AnyValue (ArrayValue's values field) of one member.

func (e *encoder) boolElem(b bool) {
	// 2 bytes: the bool's tag and value.
	e.buf = appendTag(e.buf, arrayValueValues, protowire.BytesType)
	e.buf = append(e.buf, 2, byte(protowire.EncodeTag(anyValueBool, protowire.VarintType)), byte(protowire.EncodeBool(b)))
}

func (e *encoder) int64Elem(n int64) {
	e.buf = appendTag(e.buf, arrayValueValues, protowire.BytesType)
	e.buf = appendVarint(e.buf, uint64(1+protowire.SizeVarint(uint64(n))))
	e.buf = appendTag(e.buf, anyValueInt, protowire.VarintType)
	e.buf = appendVarint(e.buf, uint64(n))
}

func (e *encoder) float64Elem(f float64) {
	e.buf = appendTag(e.buf, arrayValueValues, protowire.BytesType)
	e.buf = append(e.buf, 1+8)
	e.buf = appendTag(e.buf, anyValueDouble, protowire.Fixed64Type)
	e.buf = protowire.AppendFixed64(e.buf, math.Float64bits(f))
}

func (e *encoder) stringElem(s string) {
	e.buf = appendTag(e.buf, arrayValueValues, protowire.BytesType)
	e.buf = appendVarint(e.buf, uint64(1+protowire.SizeBytes(len(s))))
	e.buf = appendTag(e.buf, anyValueString, protowire.BytesType)
	e.buf = appendVarint(e.buf, uint64(len(s)))
	e.buf = append(e.buf, s...)
}

// traceState encodes ts as its String would, without building the string: the members' key=value, joined by
// commas.
func (e *encoder) traceState(num protowire.Number, ts trace.TraceState) {
	n := ts.Len()
	if n == 0 {
		return
	}
	size := n - 1 // the commas
	ts.Walk(func(k, v string) bool {
		size += len(k) + 1 + len(v)
		return true
	})
	e.buf = appendTag(e.buf, num, protowire.BytesType)
	e.buf = appendVarint(e.buf, uint64(size))
	first := true
	ts.Walk(func(k, v string) bool {
		if !first {
			e.buf = append(e.buf, ',')
		}
		first = false
		e.buf = append(e.buf, k...)
		e.buf = append(e.buf, '=')
		e.buf = append(e.buf, v...)
		return true
	})
}

// The scalar fields: proto3 writes none of them at their zero value.

func (e *encoder) string(num protowire.Number, s string) {
	if s == "" {
		return
	}
	e.buf = appendTag(e.buf, num, protowire.BytesType)
	e.buf = appendVarint(e.buf, uint64(len(s)))
	e.buf = append(e.buf, s...)
}

func (e *encoder) bytes(num protowire.Number, b []byte) {
	if len(b) == 0 {
		return
	}
	e.buf = appendTag(e.buf, num, protowire.BytesType)
	e.buf = appendVarint(e.buf, uint64(len(b)))
	e.buf = append(e.buf, b...)
}

func (e *encoder) uvarint(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.buf = appendTag(e.buf, num, protowire.VarintType)
	e.buf = appendVarint(e.buf, v)
}

func (e *encoder) fixed64(num protowire.Number, v uint64) {
	if v == 0 {
		return
	}
	e.buf = appendTag(e.buf, num, protowire.Fixed64Type)
	e.buf = protowire.AppendFixed64(e.buf, v)
}

func (e *encoder) fixed32(num protowire.Number, v uint32) {
	if v == 0 {
		return
	}
	e.buf = appendTag(e.buf, num, protowire.Fixed32Type)
	e.buf = protowire.AppendFixed32(e.buf, v)
}

// zeros fills the room left for a length.
var zeros [reserveLarge]byte

// open starts a length-delimited field: its tag, then reserve bytes for the length, which is known once the
// content is written (close). It returns where the content starts.
func (e *encoder) open(num protowire.Number, reserve int) int {
	e.buf = appendTag(e.buf, num, protowire.BytesType)
	e.buf = append(e.buf, zeros[:reserve]...)
	return len(e.buf)
}

// close writes the length of the field whose content started at start, with reserve bytes left for it: in place
// when the length's varint takes that many bytes, else after moving the content to make it fit. A single pass,
// then, with a copy only for a content of an unusual size, rather than a first pass over every span to size the
// messages.
func (e *encoder) close(start, reserve int) {
	n := len(e.buf) - start
	size := protowire.SizeVarint(uint64(n))
	if size != reserve {
		if size > reserve {
			e.buf = append(e.buf, zeros[:size-reserve]...)
		}
		copy(e.buf[start-reserve+size:], e.buf[start:start+n])
		e.buf = e.buf[:start-reserve+size+n]
	}
	putVarint(e.buf[start-reserve:], uint64(n))
}

// appendTag is protowire.AppendTag, inlined for the field numbers below 16: their tag is one byte.
func appendTag(b []byte, num protowire.Number, typ protowire.Type) []byte {
	if num < 16 {
		return append(b, byte(num)<<3|byte(typ))
	}
	return protowire.AppendTag(b, num, typ)
}

// appendVarint is protowire.AppendVarint, inlined for values below 128 (most lengths): one byte.
func appendVarint(b []byte, v uint64) []byte {
	if v < 0x80 {
		return append(b, byte(v))
	}
	return protowire.AppendVarint(b, v)
}

// putVarint writes v's varint at the start of b, which has room for it.
func putVarint(b []byte, v uint64) {
	i := 0
	for v >= 0x80 {
		b[i] = byte(v) | 0x80
		v >>= 7
		i++
	}
	b[i] = byte(v)
}

// unixNano is t as tracetransform writes times: nanoseconds since the epoch, 0 for times before it (and for the
// zero time, whose UnixNano is out of range).
func unixNano(t time.Time) uint64 {
	return uint64(max(0, t.UnixNano()))
}

// clampUint32 is tracetransform's: counts are uint32 in OTLP.
func clampUint32(v int) uint32 {
	if v < 0 {
		return 0
	}
	if int64(v) > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

// spanFlagsWith is tracetransform's buildSpanFlagsWith: the W3C trace flags in the low 8 bits, the bit saying
// whether the parent is remote is known (always), and the bit saying it is.
func spanFlagsWith(tf trace.TraceFlags, parent trace.SpanContext) uint32 {
	flags := uint32(tf) | uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK)
	if parent.IsRemote() {
		flags |= uint32(tracepb.SpanFlags_SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK)
	}
	return flags
}

// otlpStatusCode maps the SDK's codes (Unset 0, Error 1, Ok 2) to OTLP's (Unset 0, Ok 1, Error 2); an unknown
// code is Unset, as in tracetransform.
func otlpStatusCode(c codes.Code) tracepb.Status_StatusCode {
	switch c {
	case codes.Ok:
		return tracepb.Status_STATUS_CODE_OK
	case codes.Error:
		return tracepb.Status_STATUS_CODE_ERROR
	default:
		return tracepb.Status_STATUS_CODE_UNSET
	}
}

// otlpSpanKind maps the SDK's span kinds to OTLP's; an unknown kind is unspecified, as in tracetransform.
func otlpSpanKind(k trace.SpanKind) tracepb.Span_SpanKind {
	switch k {
	case trace.SpanKindInternal:
		return tracepb.Span_SPAN_KIND_INTERNAL
	case trace.SpanKindClient:
		return tracepb.Span_SPAN_KIND_CLIENT
	case trace.SpanKindServer:
		return tracepb.Span_SPAN_KIND_SERVER
	case trace.SpanKindProducer:
		return tracepb.Span_SPAN_KIND_PRODUCER
	case trace.SpanKindConsumer:
		return tracepb.Span_SPAN_KIND_CONSUMER
	default:
		return tracepb.Span_SPAN_KIND_UNSPECIFIED
	}
}
