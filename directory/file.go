package directory

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	kgzip "github.com/klauspost/compress/gzip"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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

// WriteSnapshotFile writes a snapshot in the format its extension names (see ReadSnapshotFile). A binary
// snapshot is encoded and compressed one object at a time (writeWire) straight into the file: the large preset's
// 144 MB encoding and its gzip were otherwise both in memory at the peak of a full sync.
func WriteSnapshotFile(path string, s *pb.Snapshot) (err error) {
	format := strings.TrimSuffix(path, ".gz")
	var encode func(io.Writer) error
	switch {
	case strings.HasSuffix(format, ".json"):
		encode = func(w io.Writer) error {
			data, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(s)
			if err == nil {
				_, err = w.Write(data)
			}
			return err
		}
	case strings.HasSuffix(format, ".pb"):
		encode = func(w io.Writer) error { return writeWire(w, s) }
	default:
		return fmt.Errorf("%s: unknown snapshot format: want .json, .json.gz, .pb or .pb.gz", path)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	var w io.Writer = bw
	var zw *gzip.Writer
	if format != path {
		zw, _ = gzip.NewWriterLevel(bw, gzip.BestSpeed)
		w = zw
	}
	if err := encode(w); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// writeWire writes proto.MarshalOptions{Deterministic: true}.Marshal(m)'s bytes to w, each element of a repeated
// message field encoded on its own: the message's fields in field-number order, then its unknown fields, as
// protobuf-go orders them (TestWriteWireIsDeterministicMarshal holds it to that).
func writeWire(w io.Writer, m proto.Message) error {
	opts := proto.MarshalOptions{Deterministic: true}
	r := m.ProtoReflect()
	fds := r.Descriptor().Fields()
	order := make([]protoreflect.FieldDescriptor, fds.Len())
	for i := range order {
		order[i] = fds.Get(i)
	}
	slices.SortFunc(order, func(a, b protoreflect.FieldDescriptor) int { return cmp.Compare(a.Number(), b.Number()) })
	var head, body []byte
	var err error
	for _, fd := range order {
		if !r.Has(fd) {
			continue
		}
		if fd.IsList() && fd.Message() != nil {
			list := r.Get(fd).List()
			for i := range list.Len() {
				if body, err = opts.MarshalAppend(body[:0], list.Get(i).Message().Interface()); err != nil {
					return err
				}
				head = protowire.AppendTag(head[:0], fd.Number(), protowire.BytesType)
				head = protowire.AppendVarint(head, uint64(len(body)))
				if _, err := w.Write(head); err != nil {
					return err
				}
				if _, err := w.Write(body); err != nil {
					return err
				}
			}
			continue
		}
		one := r.New()
		one.Set(fd, r.Get(fd))
		if body, err = opts.MarshalAppend(body[:0], one.Interface()); err != nil {
			return err
		}
		if _, err := w.Write(body); err != nil {
			return err
		}
	}
	_, err = w.Write(r.GetUnknown())
	return err
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
