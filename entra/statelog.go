package entra

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"slices"
	"strings"
)

// FileState keeps the state in a base file (gzipped JSON when the name ends in .gz) and a log next to it
// (Path+".log") of what each later round changed, so that a round costs what it changed rather than the
// tenant (rewriting the base of a 1M-user tenant takes seconds). Once the log outgrows CompactFraction of the
// base, the next round writes the base whole again (atomically, under a new LogID) and empties the log.
//
// Crash safety: a log record holds a round's objects and its delta links together, framed with its length
// and a CRC-32C, and is fsynced before Save returns. Load applies the records that carry the base's LogID in
// sequence and stops at the first that is torn, of another log or out of sequence: its round was not saved
// and is read from Graph again from the previous links. A crash during compaction leaves the old base and log
// (the rename did not happen) or the new base with a log of an older LogID, which Load ignores.
//
// A FileState is used by one Syncer at a time.
type FileState struct {
	Path string
	// CompactFraction is the log size, as a fraction of the base file's, past which the next round rewrites
	// the base; 0 means 0.5.
	CompactFraction float64

	last     *State // the state the files hold, as loaded or saved
	logSize  int64  // bytes of whole records of last's LogID at the start of the log
	baseSize int64
	records  int
}

var _ StateStore = (*FileState)(nil)

// LogPath is the log's file.
func (f *FileState) LogPath() string { return f.Path + ".log" }

func (f *FileState) zip() bool { return strings.HasSuffix(f.Path, ".gz") }

// Load reads the base and applies the log. A base without a LogID (written whole before the log existed) is
// rewritten with one at once: the migration of an old state file.
func (f *FileState) Load(ctx context.Context) (*State, error) {
	f.last, f.logSize, f.baseSize, f.records = nil, 0, 0, 0
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s, err := UnmarshalState(data, f.zip())
	if err != nil {
		return nil, fmt.Errorf("state %s (delete it to start with a full sync): %w", f.Path, err)
	}
	if s == nil {
		return nil, nil
	}
	f.baseSize = int64(len(data))
	if s.LogID == "" {
		if err := f.compact(ctx, s); err != nil {
			return nil, err
		}
		return s, nil
	}
	log, err := os.ReadFile(f.LogPath())
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	f.logSize, f.records, err = replayLog(s, log)
	if err != nil {
		return nil, fmt.Errorf("state %s (delete it and %s to start with a full sync): %w", f.Path, f.LogPath(), err)
	}
	f.last = s
	return s, nil
}

// Save appends what the round changed to the log, or writes the state whole: when the round read everything,
// when it did not start from the state the files hold, or when the log has grown past CompactFraction.
func (f *FileState) Save(ctx context.Context, s *State) error {
	d := s.delta
	s.delta = nil // the state no longer needs the one before it
	if d == nil || f.last == nil || d.From != f.last || f.last.LogID == "" {
		return f.compact(ctx, s)
	}
	s.LogID = f.last.LogID
	rec, err := encodeRecord(s, d, f.records+1)
	if err != nil {
		return err
	}
	frac := f.CompactFraction
	if frac <= 0 {
		frac = 0.5
	}
	if float64(f.logSize+int64(len(rec))) > frac*float64(f.baseSize) {
		return f.compact(ctx, s)
	}
	if err := f.append(rec); err != nil {
		return err
	}
	f.last = s
	f.logSize += int64(len(rec))
	f.records++
	return nil
}

// append writes one record after the log's whole records (dropping a torn tail a crash left) and syncs it.
func (f *FileState) append(rec []byte) error {
	lf, err := os.OpenFile(f.LogPath(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	err = lf.Truncate(f.logSize)
	if err == nil {
		_, err = lf.WriteAt(rec, f.logSize)
	}
	if err == nil {
		err = lf.Sync()
	}
	if cerr := lf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", f.LogPath(), err)
	}
	return nil
}

// compact writes s whole as the base under a new LogID, then empties the log (whose records name the old one).
func (f *FileState) compact(_ context.Context, s *State) error {
	var id [8]byte
	_, _ = rand.Read(id[:])
	old := s.LogID
	s.LogID = hex.EncodeToString(id[:])
	var size int64
	err := replaceFile(f.Path, func(tmp string) error {
		// Streamed to the file: the encoding of a large tenant is never in memory whole.
		out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
		if err != nil {
			return err
		}
		err = EncodeState(out, s, f.zip())
		if err == nil {
			var info os.FileInfo
			if info, err = out.Stat(); err == nil {
				size = info.Size()
			}
		}
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		return err
	})
	if err != nil {
		s.LogID = old
		return err
	}
	f.last, f.baseSize, f.logSize, f.records = s, size, 0, 0
	// Best effort: should it fail, the records name the old LogID, so Load ignores them and the next append
	// overwrites them.
	_ = os.Truncate(f.LogPath(), 0)
	return nil
}

// logRecord is one round in the log: its links, the users and units it changed (null: removed), the groups it
// changed as their properties and member and owner changes (null: removed), and the overlay and labels when
// they changed.
type logRecord struct {
	LogID      string                  `json:"logId"`
	Seq        int                     `json:"seq"`
	UsersLink  string                  `json:"usersDeltaLink"`
	GroupsLink string                  `json:"groupsDeltaLink"`
	UnitsLink  string                  `json:"unitsDeltaLink,omitempty"`
	Users      map[string]*User        `json:"users,omitempty"`
	Groups     map[string]*groupChange `json:"groups,omitempty"`
	Units      map[string]*Unit        `json:"units,omitempty"`
	Overlay    *Overlay                `json:"overlay,omitempty"`
	Labels     *[]json.RawMessage      `json:"labels,omitempty"`
}

// groupChange is a group's properties, with the members and owners added (groupJSON's lists) and removed. A
// round adding one member to a group of 100,000 writes one id, not the group.
type groupChange struct {
	groupJSON
	MembersRemoved []string `json:"mr,omitempty"`
	OwnersRemoved  []string `json:"or,omitempty"`
}

// recordHeader is the length of the payload and its CRC-32C, little-endian.
const recordHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeRecord frames what s changed from d.From as the log's seq-th record since its base.
func encodeRecord(s *State, d *Delta, seq int) ([]byte, error) {
	r := logRecord{LogID: s.LogID, Seq: seq, UsersLink: s.UsersLink, GroupsLink: s.GroupsLink, UnitsLink: s.UnitsLink}
	m, from := s.Mirror, d.From.Mirror
	if len(d.Users) > 0 {
		r.Users = make(map[string]*User, len(d.Users))
		for _, id := range d.Users {
			if u, ok := m.Users[id]; ok {
				r.Users[id] = &u
			} else {
				r.Users[id] = nil
			}
		}
	}
	if len(d.Groups) > 0 {
		r.Groups = make(map[string]*groupChange, len(d.Groups))
		for _, id := range d.Groups {
			members, whole := d.members[id]
			owners := d.owners[id]
			if whole && members == nil {
				members, owners = allIDs(from.Groups[id], m.Groups[id])
			}
			r.Groups[id] = changeOf(from.Groups[id], m.Groups[id], members, owners)
		}
	}
	if len(d.Units) > 0 {
		r.Units = make(map[string]*Unit, len(d.Units))
		for _, id := range d.Units {
			r.Units[id] = m.Units[id] // nil when removed
		}
	}
	if !reflect.DeepEqual(s.Overlay, d.From.Overlay) {
		r.Overlay = s.Overlay
	}
	if !slices.EqualFunc(s.Labels, d.From.Labels, func(a, b json.RawMessage) bool { return string(a) == string(b) }) {
		r.Labels = &s.Labels
	}
	payload, err := json.Marshal(&r)
	if err != nil {
		return nil, err
	}
	out := make([]byte, recordHeader, recordHeader+len(payload))
	binary.LittleEndian.PutUint32(out, uint32(len(payload)))
	binary.LittleEndian.PutUint32(out[4:], crc32.Checksum(payload, castagnoli))
	return append(out, payload...), nil
}

// changeOf is what turns old (nil: a new group) into g (nil: removed). members and owners are the ids the round
// named in the group's members@delta and owners@delta: only their membership can differ, so a round costs the
// changes it read, not the size of the groups they touch.
func changeOf(old, g *Group, members, owners map[string]bool) *groupChange {
	if g == nil {
		return nil
	}
	c := &groupChange{groupJSON: groupJSON{Name: g.Name, Kind: g.Kind, Dynamic: g.Dynamic, OnPremises: g.OnPremises,
		RoleAssignable: g.RoleAssignable, Label: g.Label}}
	var oldMembers, oldOwners map[string]byte
	if old != nil {
		oldMembers, oldOwners = old.Members, old.Owners
	}
	c.Members, c.MembersRemoved = refChanges(oldMembers, g.Members, members)
	c.Owners, c.OwnersRemoved = refChanges(oldOwners, g.Owners, owners)
	return c
}

// allIDs names every member and owner of either version of a group.
func allIDs(old, g *Group) (members, owners map[string]bool) {
	members, owners = map[string]bool{}, map[string]bool{}
	for _, v := range []*Group{old, g} {
		if v == nil {
			continue
		}
		for id := range v.Members {
			members[id] = true
		}
		for id := range v.Owners {
			owners[id] = true
		}
	}
	return members, owners
}

func refChanges(old, cur map[string]byte, named map[string]bool) (added refsJSON, removed []string) {
	add := map[string]byte{}
	for id := range named {
		k, now := cur[id]
		was, before := old[id]
		switch {
		case now && (!before || was != k):
			add[id] = k
		case before && !now:
			removed = append(removed, id)
		}
	}
	slices.Sort(removed)
	return toRefsJSON(add), removed
}

// replayLog applies the log's records of s.LogID to s in sequence and returns the length of those whole
// records and their count; it stops at a torn record, a record of another log or one out of sequence.
func replayLog(s *State, log []byte) (int64, int, error) {
	var off int64
	n := 0
	for {
		rest := log[off:]
		if len(rest) < recordHeader {
			return off, n, nil
		}
		size := int64(binary.LittleEndian.Uint32(rest))
		if int64(len(rest))-recordHeader < size {
			return off, n, nil // torn: the round was not saved
		}
		payload := rest[recordHeader : recordHeader+size]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(rest[4:]) {
			return off, n, nil
		}
		var r logRecord
		if err := json.Unmarshal(payload, &r); err != nil {
			// A whole record with a valid checksum that does not parse is not a crash's doing.
			return 0, 0, fmt.Errorf("log record %d: %w", n+1, err)
		}
		if r.LogID != s.LogID || r.Seq != n+1 {
			return off, n, nil
		}
		r.apply(s)
		off += recordHeader + size
		n++
	}
}

func (r *logRecord) apply(s *State) {
	s.UsersLink, s.GroupsLink, s.UnitsLink = r.UsersLink, r.GroupsLink, r.UnitsLink
	m := s.Mirror
	for id, u := range r.Users {
		if u == nil {
			delete(m.Users, id)
		} else {
			m.Users[id] = *u
		}
	}
	for id, c := range r.Groups {
		if c == nil {
			delete(m.Groups, id)
			continue
		}
		g := m.Groups[id]
		if g == nil {
			g = &Group{Members: map[string]byte{}, Owners: map[string]byte{}}
			m.Groups[id] = g
		}
		g.Name, g.Kind, g.Dynamic, g.OnPremises, g.RoleAssignable, g.Label = c.Name, c.Kind, c.Dynamic, c.OnPremises, c.RoleAssignable, c.Label
		for _, id := range c.MembersRemoved {
			delete(g.Members, id)
		}
		for _, id := range c.OwnersRemoved {
			delete(g.Owners, id)
		}
		maps.Copy(g.Members, c.Members.toMap())
		maps.Copy(g.Owners, c.Owners.toMap())
	}
	if m.Units == nil {
		m.Units = map[string]*Unit{}
	}
	for id, u := range r.Units {
		if u == nil {
			delete(m.Units, id)
		} else {
			m.Units[id] = u
		}
	}
	if r.Overlay != nil {
		s.Overlay = r.Overlay
	}
	if r.Labels != nil {
		s.Labels = *r.Labels
	}
}
