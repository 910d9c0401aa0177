package directory_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/groupgate/groupgate/directory"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// WriteSnapshotFile encodes a .pb object by object; the file must hold exactly the bytes of the deterministic
// encoding of the whole message (byte for byte, unknown fields included), gzipped or not.
func TestWriteSnapshotFileIsDeterministicMarshal(t *testing.T) {
	corpus := wireCorpus(t)
	// A field this version does not know, kept by proto.Unmarshal and written after the known ones.
	unknown := protowire.AppendTag(nil, 99, protowire.BytesType)
	unknown = protowire.AppendBytes(unknown, []byte("from a newer writer"))
	corpus["demo with an unknown field"] = append(bytes.Clone(corpus["demo"]), unknown...)
	dir := t.TempDir()
	for name, want := range corpus {
		s := &pb.Snapshot{}
		if err := proto.Unmarshal(want, s); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(s.ProtoReflect().GetUnknown()) == 0 && name == "demo with an unknown field" {
			t.Fatal("the unknown field was not kept: the case tests nothing")
		}
		if whole, err := (proto.MarshalOptions{Deterministic: true}).Marshal(s); err != nil || !bytes.Equal(whole, want) {
			t.Fatalf("%s: the corpus bytes are not the deterministic encoding (%v)", name, err)
		}
		path := filepath.Join(dir, "t.pb")
		if err := directory.WriteSnapshotFile(path, s); err != nil {
			t.Fatal(err)
		}
		if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: .pb holds %d bytes (%v) that differ from the %d of proto.Marshal", name, len(got), err, len(want))
		}
		if err := directory.WriteSnapshotFile(path+".gz", s); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(path + ".gz")
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(zr)
		f.Close()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: .pb.gz unzips to %d bytes (%v) that differ from the %d of proto.Marshal", name, len(got), err, len(want))
		}
	}
}
