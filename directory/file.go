package directory

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	kgzip "github.com/klauspost/compress/gzip"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// maxSnapshotBytes bounds a decompressed snapshot file; the large preset (1M users, 10M edges) is ~0.5 GiB.
const maxSnapshotBytes = 4 << 30

// ReadSnapshotFile reads a snapshot as protobuf JSON (.json) or binary protobuf (.pb), either optionally
// gzipped (.json.gz, .pb.gz). Unknown JSON fields are refused, so a misspelt field is an error, not a silent
// default.
func ReadSnapshotFile(path string) (*pb.Snapshot, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readSnapshot(f, path, uncompressedSize(f, path))
}

// uncompressedSize guesses a snapshot file's decoded size, so that reading it allocates once: growing a buffer by
// doubling to half a gigabyte costs seconds of copying and zeroing on the large preset. A gzip file records its
// uncompressed size (mod 4 GiB) in its last four bytes.
func uncompressedSize(f *os.File, path string) int {
	info, err := f.Stat()
	if err != nil {
		return 0
	}
	if !strings.HasSuffix(path, ".gz") {
		return int(info.Size())
	}
	var trailer [4]byte
	if info.Size() < 18 {
		return 0
	}
	if _, err := f.ReadAt(trailer[:], info.Size()-4); err != nil {
		return 0
	}
	return int(uint32(trailer[0]) | uint32(trailer[1])<<8 | uint32(trailer[2])<<16 | uint32(trailer[3])<<24)
}

// ReadSnapshot decodes a snapshot whose format is given by name's extension (see ReadSnapshotFile).
func ReadSnapshot(r io.Reader, name string) (*pb.Snapshot, error) { return readSnapshot(r, name, 0) }

func readSnapshot(r io.Reader, name string, sizeHint int) (*pb.Snapshot, error) {
	data, err := readSnapshotBytes(r, name, sizeHint)
	if err != nil {
		return nil, err
	}
	return decodeSnapshot(data, name)
}

// readSnapshotBytes reads a snapshot file's encoded bytes, gunzipped when name ends in .gz.
func readSnapshotBytes(r io.Reader, name string, sizeHint int) ([]byte, error) {
	if strings.HasSuffix(name, ".gz") {
		// klauspost/compress's reader: the same format, gunzipped in ~60% of compress/gzip's time (the large
		// preset's 48 MB .pb.gz: 0.66–0.93 s against 1.20–1.22 s), which is a fifth of serve's start from it.
		zr, err := kgzip.NewReader(bufio.NewReaderSize(r, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("%s: not a valid gzip file: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	data := make([]byte, 0, min(max(sizeHint, 0), maxSnapshotBytes)+bytes.MinRead)
	// Read once and then scanned field by field: on the large preset (144 MB) its page faults alone were a
	// tenth of the start.
	adviseHugePages(data[:cap(data)])
	buf := bytes.NewBuffer(data)
	_, err := buf.ReadFrom(io.LimitReader(r, maxSnapshotBytes+1))
	data = buf.Bytes()
	if err != nil {
		return nil, fmt.Errorf("%s: reading (gzip stream corrupt or truncated?): %w", name, err)
	}
	if len(data) > maxSnapshotBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, int64(maxSnapshotBytes))
	}
	return data, nil
}

// decodeSnapshot decodes a snapshot file's (gunzipped) bytes in the format name's extension gives.
func decodeSnapshot(data []byte, name string) (*pb.Snapshot, error) {
	format := strings.TrimSuffix(name, ".gz")
	s := &pb.Snapshot{}
	var err error
	switch {
	case strings.HasSuffix(format, ".json"):
		err = protojson.Unmarshal(data, s)
	case strings.HasSuffix(format, ".pb"):
		err = proto.Unmarshal(data, s)
	default:
		return nil, fmt.Errorf("%s: unknown snapshot format: want .json, .json.gz, .pb or .pb.gz", name)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return s, nil
}

// WriteSnapshotFile writes a snapshot in the format its extension names (see ReadSnapshotFile).
func WriteSnapshotFile(path string, s *pb.Snapshot) error {
	format := strings.TrimSuffix(path, ".gz")
	var data []byte
	var err error
	switch {
	case strings.HasSuffix(format, ".json"):
		data, err = protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(s)
	case strings.HasSuffix(format, ".pb"):
		data, err = proto.MarshalOptions{Deterministic: true}.Marshal(s)
	default:
		return fmt.Errorf("%s: unknown snapshot format: want .json, .json.gz, .pb or .pb.gz", path)
	}
	if err != nil {
		return err
	}
	if format != path {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		if _, err := zw.Write(data); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		data = buf.Bytes()
	}
	return os.WriteFile(path, data, 0o644)
}

// LoadFile reads and validates a snapshot file into a directory at revision 1. A binary snapshot is built
// straight from its encoding (fromWire) when it can be; otherwise, and for JSON, it is decoded whole first.
func LoadFile(path string) (*Directory, error) {
	if !strings.HasSuffix(strings.TrimSuffix(path, ".gz"), ".pb") {
		s, err := ReadSnapshotFile(path)
		if err != nil {
			return nil, err
		}
		return fromSnapshotFile(path, s)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	data, err := readSnapshotBytes(f, path, uncompressedSize(f, path))
	f.Close()
	if err != nil {
		return nil, err
	}
	if d, err := fromWire(data, 1); err == nil {
		return d, nil
	}
	s, err := decodeSnapshot(data, path)
	if err != nil {
		return nil, err
	}
	return fromSnapshotFile(path, s)
}

func fromSnapshotFile(path string, s *pb.Snapshot) (*Directory, error) {
	d, err := FromSnapshot(s, 1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}
