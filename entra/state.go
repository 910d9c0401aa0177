package entra

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

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
	if err := EncodeState(&buf, s, zip); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// EncodeState writes MarshalState's encoding of s to w (json.Encoder's: the JSON and a newline) one mirrored
// object at a time. json.Encoder builds the whole JSON in memory before it writes a byte: on the large preset
// that buffer, grown by doubling, was the top of a full sync's peak RSS.
func EncodeState(w io.Writer, s *State, zip bool) error {
	var zw *gzip.Writer
	if zip {
		zw, _ = gzip.NewWriterLevel(w, gzip.BestSpeed)
		w = zw
	}
	bw := bufio.NewWriterSize(w, 256<<10)
	if err := writeState(bw, s); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if zw != nil {
		return zw.Close()
	}
	return nil
}

// mirrorField is where State's encoding without its mirror has the mirror: the only place the text can be
// unquoted (inside a JSON string its quotes would be escaped).
var mirrorField = []byte(`"mirror":null`)

// writeState writes s as encoding/json would: State's encoding without its mirror, with the mirror written in
// its place one object at a time (TestEncodeStateIsJSONMarshal compares the two).
func writeState(w *bufio.Writer, s *State) error {
	shell := *s
	shell.Mirror = nil
	j, err := json.Marshal(&shell)
	if err != nil {
		return err
	}
	head, tail, ok := bytes.Cut(j, mirrorField)
	if !ok {
		return errors.New("entra: State's encoding has no mirror field")
	}
	w.Write(head)
	w.WriteString(`"mirror":`)
	if m := s.Mirror; m == nil {
		w.WriteString("null")
	} else {
		w.WriteString(`{"users":`)
		writeObject(w, m.Users, func(b []byte, u User) ([]byte, error) { return u.appendJSON(b), nil })
		w.WriteString(`,"groups":`)
		var scratch refLists
		writeObject(w, m.Groups, func(b []byte, g *Group) ([]byte, error) { return g.appendJSON(b, &scratch), nil })
		if len(m.Units) > 0 {
			w.WriteString(`,"units":`)
			if err := writeObject(w, m.Units, func(b []byte, u *Unit) ([]byte, error) {
				j, err := json.Marshal(u)
				return append(b, j...), err
			}); err != nil {
				return err
			}
		}
		w.WriteByte('}')
	}
	w.Write(tail)
	_, err = w.WriteString("\n")
	return err
}

// writeObject writes m as encoding/json does (keys sorted), one entry at a time, each value appended by value
// to a buffer the entries share.
func writeObject[V any](w *bufio.Writer, m map[string]V, value func([]byte, V) ([]byte, error)) error {
	if m == nil {
		_, err := w.WriteString("null")
		return err
	}
	w.WriteByte('{')
	var b []byte
	var err error
	for i, k := range sortedKeys(m) {
		b = b[:0]
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		if b, err = value(b, m[k]); err != nil {
			return err
		}
		w.Write(b)
	}
	_, err = w.WriteString("}")
	return err
}

// appendJSONString appends s as encoding/json writes a string (HTML-safe). Ids and names are plain ASCII but
// for a few: those take encoding/json's own path.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendJSON appends the user as encoding/json writes User.
func (u User) appendJSON(b []byte) []byte {
	b = append(b, '{')
	if u.Name != "" {
		b = append(b, `"n":`...)
		b = appendJSONString(b, u.Name)
	}
	if u.Guest {
		if u.Name != "" {
			b = append(b, ',')
		}
		b = append(b, `"g":true`...)
	}
	return append(b, '}')
}

// refLists are a group's member or owner ids by kind ('u', 'g', 's'), reused from group to group.
type refLists [3][]string

// appendJSON appends the group as its MarshalJSON writes it (groupJSON), without building groupJSON's lists
// and its encoding for every group: on the large preset those were ~0.9 GB of garbage per state written.
func (g *Group) appendJSON(b []byte, scratch *refLists) []byte {
	if g == nil {
		return append(b, "null"...)
	}
	b = append(b, '{')
	if g.Name != "" {
		b = append(b, `"n":`...)
		b = appendJSONString(b, g.Name)
		b = append(b, ',')
	}
	b = append(b, `"k":`...)
	b = strconv.AppendInt(b, int64(g.Kind), 10)
	if g.Dynamic {
		b = append(b, `,"dyn":true`...)
	}
	if g.OnPremises {
		b = append(b, `,"onp":true`...)
	}
	if g.RoleAssignable {
		b = append(b, `,"rag":true`...)
	}
	if g.Label != "" {
		b = append(b, `,"l":`...)
		b = appendJSONString(b, g.Label)
	}
	b = append(b, `,"m":`...)
	b = appendRefsJSON(b, g.Members, scratch)
	b = append(b, `,"o":`...)
	b = appendRefsJSON(b, g.Owners, scratch)
	return append(b, '}')
}

// appendRefsJSON appends refs as encoding/json writes toRefsJSON(refs).
func appendRefsJSON(b []byte, refs map[string]byte, scratch *refLists) []byte {
	for i := range scratch {
		scratch[i] = scratch[i][:0]
	}
	for id, k := range refs {
		switch k {
		case 'u':
			scratch[0] = append(scratch[0], id)
		case 'g':
			scratch[1] = append(scratch[1], id)
		case 's':
			scratch[2] = append(scratch[2], id)
		}
	}
	b = append(b, '{')
	first := true
	for i, name := range [3]string{`"u":[`, `"g":[`, `"s":[`} {
		if len(scratch[i]) == 0 {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, name...)
		for j, id := range scratch[i] {
			if j > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, id)
		}
		b = append(b, ']')
	}
	return append(b, '}')
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
