package directory

import (
	"syscall"
	"unsafe"
)

// hugePage is the x86-64 and arm64 transparent huge page size.
const hugePage = 2 << 20

// adviseHugePages asks the kernel to back the whole huge pages inside b with huge pages (madvise MADV_HUGEPAGE:
// what transparent huge pages do for every mapping when the system says "always", and, in the common "madvise"
// setting, only for mappings that ask). It is advice: an error, or a kernel without them, changes nothing.
func adviseHugePages(b []byte) {
	if len(b) < 2*hugePage {
		return
	}
	start := uintptr(unsafe.Pointer(&b[0]))
	aligned := (start + hugePage - 1) &^ (hugePage - 1)
	end := (start + uintptr(len(b))) &^ (hugePage - 1)
	if end <= aligned {
		return
	}
	_ = syscall.Madvise(b[aligned-start:end-start], syscall.MADV_HUGEPAGE)
}

// wordBytes is the memory of a []uint64 as bytes.
func wordBytes(w []uint64) []byte {
	if len(w) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&w[0])), len(w)*8)
}
