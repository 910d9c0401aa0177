package entra

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// stateVersion changes when State's meaning changes; an older file is ignored (a full sync follows).
const stateVersion = 1

// State is what a sync keeps between rounds and runs: Graph's delta links and everything needed to compute the
// next round's changes (the mirror, the overlay and the labels of the last round written).
type State struct {
	Version   int    `json:"version"`
	Tenant    string `json:"tenant"`
	Endpoint  string `json:"endpoint"`
	UsersLink string `json:"usersDeltaLink"`
	// GroupsLink is groups/delta's deltaLink.
	GroupsLink string   `json:"groupsDeltaLink"`
	Mirror     *Mirror  `json:"mirror"`
	Overlay    *Overlay `json:"overlay"`
	// Labels are the label definitions the last round used, as protobuf JSON.
	Labels []json.RawMessage `json:"labels,omitempty"`
}

// StateStore keeps a sync's State. The file store is the one there is; a store shared by several sync
// processes (PostgreSQL with a lease, so that only one writes) can implement the same two methods.
type StateStore interface {
	// Load returns the saved state, or nil when there is none.
	Load(ctx context.Context) (*State, error)
	// Save replaces the saved state atomically: a crash leaves the old state or the new one, never a mix.
	Save(ctx context.Context, s *State) error
}

// FileState keeps the state in one file, gzipped JSON when the name ends in .gz.
type FileState struct{ Path string }

func (f FileState) Load(context.Context) (*State, error) {
	file, err := os.Open(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var r = bufio.NewReader(file)
	var dec *json.Decoder
	if strings.HasSuffix(f.Path, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, fmt.Errorf("state %s: %w", f.Path, err)
		}
		defer zr.Close()
		dec = json.NewDecoder(zr)
	} else {
		dec = json.NewDecoder(r)
	}
	s := &State{}
	if err := dec.Decode(s); err != nil {
		return nil, fmt.Errorf("state %s does not parse (delete it to start with a full sync): %w", f.Path, err)
	}
	if s.Version != stateVersion {
		return nil, nil
	}
	return s, nil
}

func (f FileState) Save(_ context.Context, s *State) error {
	return writeAtomic(f.Path, func(w *bufio.Writer) error {
		var enc *json.Encoder
		var zw *gzip.Writer
		if strings.HasSuffix(f.Path, ".gz") {
			zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
			enc = json.NewEncoder(zw)
		} else {
			enc = json.NewEncoder(w)
		}
		if err := enc.Encode(s); err != nil {
			return err
		}
		if zw != nil {
			return zw.Close()
		}
		return nil
	})
}

// writeAtomic writes a file next to path and renames it over path once complete and synced.
func writeAtomic(path string, write func(*bufio.Writer) error) error {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing left to remove
	w := bufio.NewWriterSize(tmp, 1<<20)
	err = write(w)
	if err == nil {
		err = w.Flush()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

func encodeLabels(labels []*pb.Label) ([]json.RawMessage, error) {
	out := make([]json.RawMessage, 0, len(labels))
	for _, l := range labels {
		b, err := protojson.Marshal(l)
		if err != nil {
			return nil, err
		}
		out = append(out, b)
	}
	return out, nil
}

func decodeLabels(raw []json.RawMessage) ([]*pb.Label, error) {
	out := make([]*pb.Label, 0, len(raw))
	for _, r := range raw {
		l := &pb.Label{}
		if err := protojson.Unmarshal(r, l); err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, nil
}

// LoadLabels reads a --labels file: a JSON array of Label in protobuf JSON, e.g.
// [{"id": "…", "displayName": "Confidential", "priority": 10, "groupsScope": true, "synced": true,
// "guestsAllowed": false, "publishedTo": ["*"]}].
func LoadLabels(path string) ([]*pb.Label, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%s: want a JSON array of labels: %w", path, err)
	}
	labels := make([]*pb.Label, 0, len(raw))
	seen := map[string]bool{}
	for i, r := range raw {
		l := &pb.Label{}
		if err := protojson.Unmarshal(r, l); err != nil {
			return nil, fmt.Errorf("%s: label %d: %w", path, i, err)
		}
		if l.GetId() == "" {
			return nil, fmt.Errorf("%s: label %d has no id", path, i)
		}
		if seen[l.GetId()] {
			return nil, fmt.Errorf("%s: label %s is defined twice", path, l.GetId())
		}
		seen[l.GetId()] = true
		labels = append(labels, l)
	}
	return labels, nil
}
