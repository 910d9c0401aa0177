package gateway

// Compact is compact, for tests.
var Compact = compact
