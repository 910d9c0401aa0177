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
	return ReadSnapshot(f, path)
}

// ReadSnapshot decodes a snapshot whose format is given by name's extension (see ReadSnapshotFile).
func ReadSnapshot(r io.Reader, name string) (*pb.Snapshot, error) {
	format := strings.TrimSuffix(name, ".gz")
	if format != name {
		zr, err := gzip.NewReader(bufio.NewReaderSize(r, 1<<20))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		defer zr.Close()
		r = zr
	}
	data, err := io.ReadAll(io.LimitReader(r, maxSnapshotBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if len(data) > maxSnapshotBytes {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, int64(maxSnapshotBytes))
	}
	s := &pb.Snapshot{}
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

// LoadFile reads and validates a snapshot file into a directory at revision 1.
func LoadFile(path string) (*Directory, error) {
	s, err := ReadSnapshotFile(path)
	if err != nil {
		return nil, err
	}
	d, err := FromSnapshot(s, 1)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}
