//go:build !linux

package directory

func adviseHugePages([]byte) {}

func wordBytes([]uint64) []byte { return nil }
