package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/findings"
	"github.com/groupgate/groupgate/store"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/protoadapt"
)

// ErrorInfo of Watch from a revision the change log no longer holds (OUT_OF_RANGE): metadata oldest_revision
// is the oldest revision kept, min_after_revision the smallest after_revision that Watch accepts.
const (
	ErrorDomain     = "groupgate.v1"
	CompactedReason = "REVISION_COMPACTED"
)

// toStatus maps an error from the layers below to a gRPC status. It is the one place that knows the mapping
// (SPEC §6); every handler error and every per-item error of CheckBatch and EvaluatePlan goes through it.
func toStatus(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	if st, ok := status.FromError(err); ok {
		return st
	}
	var notFound *directory.NotFoundError
	var invalid *directory.ValidationError
	var mismatch *store.RevisionMismatchError
	var compacted *store.CompactedError
	var tooOld *findings.TooOldError
	var badRequest *fieldError
	switch {
	case errors.As(err, &badRequest):
		return withDetails(status.New(codes.InvalidArgument, badRequest.Error()), badRequest.details())
	case errors.As(err, &notFound):
		return withDetails(status.New(codes.NotFound, notFound.Error()), &errdetails.ResourceInfo{
			ResourceType: notFound.Kind,
			ResourceName: notFound.ID,
			Description:  notFound.Error(),
		})
	case errors.As(err, &invalid):
		br := &errdetails.BadRequest{}
		for _, p := range invalid.Problems {
			br.FieldViolations = append(br.FieldViolations, &errdetails.BadRequest_FieldViolation{
				Field: p.Field, Description: p.Description,
			})
		}
		return withDetails(status.New(codes.InvalidArgument, invalid.Error()), br)
	case errors.As(err, &mismatch):
		return withDetails(status.New(codes.FailedPrecondition, mismatch.Error()), &errdetails.PreconditionFailure{
			Violations: []*errdetails.PreconditionFailure_Violation{{
				Type: "REVISION", Subject: "expected_revision", Description: mismatch.Error(),
			}},
		})
	case errors.As(err, &tooOld):
		// As for Watch: the revision is not kept; the metadata name the oldest one a subscription can start from.
		return withDetails(status.New(codes.OutOfRange, tooOld.Error()), &errdetails.ErrorInfo{
			Reason: CompactedReason,
			Domain: ErrorDomain,
			Metadata: map[string]string{
				"tenant_id":          tooOld.TenantID,
				"after_revision":     strconv.FormatInt(tooOld.After, 10),
				"oldest_revision":    strconv.FormatInt(tooOld.Oldest, 10),
				"min_after_revision": strconv.FormatInt(tooOld.Oldest, 10),
			},
		})
	case errors.As(err, &compacted):
		// OUT_OF_RANGE, as for reading past the end of a file: the request is fine, the revision is not kept. The
		// ErrorInfo carries the numbers so that a client need not parse the message.
		return withDetails(status.New(codes.OutOfRange, compacted.Error()+": export the tenant and watch after its revision"), &errdetails.ErrorInfo{
			Reason: CompactedReason,
			Domain: ErrorDomain,
			Metadata: map[string]string{
				"tenant_id":          compacted.TenantID,
				"after_revision":     strconv.FormatInt(compacted.After, 10),
				"oldest_revision":    strconv.FormatInt(compacted.Oldest, 10),
				"min_after_revision": strconv.FormatInt(compacted.Oldest-1, 10),
			},
		})
	case errors.Is(err, store.ErrCompacted):
		return status.New(codes.OutOfRange, err.Error()+": export the tenant and watch after its revision")
	case errors.Is(err, store.ErrUnavailable):
		return status.New(codes.Unavailable, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.New(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.New(codes.Canceled, err.Error())
	}
	return status.New(codes.Internal, err.Error())
}

func withDetails(st *status.Status, details ...protoadapt.MessageV1) *status.Status {
	for _, d := range details {
		if with, err := st.WithDetails(d); err == nil {
			st = with
		}
	}
	return st
}

// fieldError is a malformed request: the fields at fault and why.
type fieldError struct {
	violations []*errdetails.BadRequest_FieldViolation
}

func (e *fieldError) add(field, format string, args ...any) {
	e.violations = append(e.violations, &errdetails.BadRequest_FieldViolation{
		Field: field, Description: fmt.Sprintf(format, args...),
	})
}

func (e *fieldError) Error() string {
	parts := make([]string, len(e.violations))
	for i, v := range e.violations {
		parts[i] = v.GetField() + ": " + v.GetDescription()
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

func (e *fieldError) details() *errdetails.BadRequest {
	return &errdetails.BadRequest{FieldViolations: e.violations}
}

func (e *fieldError) orNil() error {
	if e == nil || len(e.violations) == 0 {
		return nil
	}
	return e
}
