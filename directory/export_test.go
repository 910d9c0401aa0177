package directory

// FromWire exposes the binary snapshot decoder to the external tests, which need the demo tenant and the
// conformance fixtures (packages that import this one).
var FromWire = fromWire

// ErrNotFast is the wire decoder's "use the general decoder".
var ErrNotFast = errNotFast
