package entra

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"

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
	GroupsLink string `json:"groupsDeltaLink"`
	// UnitsLink is administrativeUnits/delta's deltaLink; empty in a state written before units were read,
	// which then reads them whole.
	UnitsLink string   `json:"unitsDeltaLink,omitempty"`
	Mirror    *Mirror  `json:"mirror"`
	Overlay   *Overlay `json:"overlay"`
	// Labels are the label definitions the last round used, as protobuf JSON.
	Labels []json.RawMessage `json:"labels,omitempty"`
	// LogID names the log of rounds that continues this state in a FileState (statelog.go): only records
	// carrying it apply. Empty in a state written whole (before the log existed, or by another StateStore).
	LogID string `json:"logId,omitempty"`

	// delta is what the round that made this state changed from the state it started from; nil when the round
	// read everything, or once saved.
	delta *Delta
}

// Delta is what a round changed from the state it started from: the ids of the users, groups and
// administrative units a delta entry named (each is now in the mirror, or was removed from it). A StateStore
// can save only these (and the links, overlay and labels) instead of the whole state.
type Delta struct {
	From                 *State
	Users, Groups, Units []string
	// members and owners are, per group, the ids the round's entries named in members@delta and owners@delta.
	members, owners map[string]map[string]bool
}

// Delta returns what the round that made s changed, or nil when s must be saved whole (a full read, or a state
// that was loaded rather than made by a round).
func (s *State) Delta() *Delta { return s.delta }

// StateStore keeps a sync's State. The file store is the one there is; a store shared by several sync
// processes (PostgreSQL with a lease, so that only one writes) can implement the same two methods.
type StateStore interface {
	// Load returns the saved state, or nil when there is none.
	Load(ctx context.Context) (*State, error)
	// Save replaces the saved state atomically: a crash leaves the old state or the new one, never a mix.
	Save(ctx context.Context, s *State) error
}

// Lease is implemented by a StateStore that several sync processes share (one PostgreSQL database for a
// replica set): only the holder of the lease may write. Load takes the lease or fails while another process
// holds it; Save renews it; RunRound renews it right before writing to the destination, so a process that lost
// it (paused past its expiry while another took over) stops before writing.
type Lease interface {
	Renew(ctx context.Context) error
}

// MarshalState encodes a state as JSON, gzipped when zip is set: the format of the state file, for other
// StateStores too.
func MarshalState(s *State, zip bool) ([]byte, error) {
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if zip {
		zw, _ = gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		w = zw
	}
	if err := json.NewEncoder(w).Encode(s); err != nil {
		return nil, err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

// UnmarshalState decodes MarshalState's encoding. A state of another version is nil: a full sync follows.
func UnmarshalState(data []byte, zip bool) (*State, error) {
	var r io.Reader = bytes.NewReader(data)
	if zip {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		defer zr.Close()
		r = zr
	}
	s := &State{}
	if err := json.NewDecoder(r).Decode(s); err != nil {
		return nil, fmt.Errorf("does not parse: %w", err)
	}
	if s.Version != stateVersion {
		return nil, nil
	}
	return s, nil
}

// replaceFile has write create a temporary file next to path (its name ends like path's, so that the extension
// still chooses a format), syncs it and renames it over path: a crash leaves the old file or the new one.
func replaceFile(path string, write func(tmp string) error) error {
	dir, base := filepath.Split(path)
	tmp := filepath.Join(dir, fmt.Sprintf(".tmp-%d-%d-%s", os.Getpid(), rand.Uint32(), base))
	defer os.Remove(tmp) // after a successful rename there is nothing left to remove
	err := write(tmp)
	if err == nil {
		var f *os.File
		if f, err = os.OpenFile(tmp, os.O_RDWR, 0); err == nil {
			err = f.Sync()
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
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
