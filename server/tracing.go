package server

import (
	"context"

	"github.com/groupgate/groupgate/directory"
)

// evaluate runs one policy evaluation on dir.
func evaluate[Q, R any](ctx context.Context, s *Server, name string, dir *directory.Directory, q Q, fn func(*directory.Directory, Q) (R, error)) (R, error) {
	return fn(dir, q)
}
