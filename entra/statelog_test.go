package entra_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/groupgate/groupgate/entra"
	"github.com/groupgate/groupgate/entra/graphtest"
	"google.golang.org/protobuf/proto"
)

// wholeStore saves the state whole, as FileState did before its log: the reference the log must reproduce.
type wholeStore struct{ data []byte }

func (w *wholeStore) Load(context.Context) (*entra.State, error) {
	if w.data == nil {
		return nil, nil
	}
	return entra.UnmarshalState(w.data, false)
}

func (w *wholeStore) Save(_ context.Context, s *entra.State) error {
	data, err := entra.MarshalState(s, false)
	w.data = data
	return err
}

// normal is a loaded state with what may differ between two encodings of the same state cleared: the log's id,
// the order of a unit's member lists (written from a map) and an empty map against none.
func normal(t *testing.T, s *entra.State) *entra.State {
	t.Helper()
	if s == nil {
		t.Fatal("no state loaded")
	}
	s.LogID = ""
	if len(s.Mirror.Units) == 0 {
		s.Mirror.Units = nil
	}
	for _, u := range s.Mirror.Units {
		slices.Sort(u.Members.Users)
		slices.Sort(u.Members.Groups)
		slices.Sort(u.Members.ServicePrincipals)
	}
	return s
}

func load(t *testing.T, st entra.StateStore) *entra.State {
	t.Helper()
	s, err := st.Load(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return normal(t, s)
}

// mustEqualState compares two loaded states and names the first part that differs.
func mustEqualState(t *testing.T, what string, got, want *entra.State) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	switch {
	case got.UsersLink != want.UsersLink || got.GroupsLink != want.GroupsLink || got.UnitsLink != want.UnitsLink:
		t.Fatalf("%s: delta links %q %q %q, want %q %q %q", what, got.UsersLink, got.GroupsLink, got.UnitsLink, want.UsersLink, want.GroupsLink, want.UnitsLink)
	case !reflect.DeepEqual(got.Mirror.Users, want.Mirror.Users):
		t.Fatalf("%s: users differ (%d, want %d)", what, len(got.Mirror.Users), len(want.Mirror.Users))
	case !reflect.DeepEqual(got.Mirror.Groups, want.Mirror.Groups):
		for id, g := range want.Mirror.Groups {
			if !reflect.DeepEqual(got.Mirror.Groups[id], g) {
				t.Fatalf("%s: group %s is %+v, want %+v", what, id, got.Mirror.Groups[id], g)
			}
		}
		t.Fatalf("%s: %d groups, want %d", what, len(got.Mirror.Groups), len(want.Mirror.Groups))
	case !reflect.DeepEqual(got.Mirror.Units, want.Mirror.Units):
		t.Fatalf("%s: units differ", what)
	default:
		t.Fatalf("%s: overlay, labels or header differ:\n%+v\nwant\n%+v", what, got, want)
	}
}

// randomChanges makes n random changes of the kinds a delta round carries: users created, renamed and
// deleted, group and owner memberships added and removed, groups created and deleted, unit members changed.
func randomChanges(rng *rand.Rand, round, n int) func(t *graphtest.Tenant) {
	return func(t *graphtest.Tenant) {
		users, groups := slices.Sorted(mapsKeys(t.Users)), slices.Sorted(mapsKeys(t.Groups))
		units := slices.Sorted(mapsKeys(t.Units))
		for i := 0; i < n; i++ {
			if len(users) == 0 || len(groups) == 0 {
				return
			}
			ui := rng.IntN(len(users))
			u, g := users[ui], t.Groups[groups[rng.IntN(len(groups))]]
			switch rng.IntN(9) {
			case 0:
				id := fmt.Sprintf("u-new-%d-%d", round, i)
				t.Users[id] = &graphtest.User{DisplayName: id, UserType: []string{"Member", "Guest"}[rng.IntN(2)]}
				users = append(users, id)
			case 1:
				t.Users[u].DisplayName += " (renamed)"
			case 2:
				delete(t.Users, u)
				users = slices.Delete(users, ui, ui+1)
			case 3, 4:
				if !slices.ContainsFunc(g.Members, func(r graphtest.Ref) bool { return r.ID == u }) {
					g.Members = append(g.Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: u})
				}
			case 5:
				if len(g.Members) > 0 {
					g.Members = slices.Delete(g.Members, 0, 1)
				}
			case 6:
				if len(g.Owners) > 0 && rng.IntN(2) == 0 {
					g.Owners = g.Owners[1:]
				} else {
					g.Owners = append(g.Owners, graphtest.Ref{Type: "#microsoft.graph.user", ID: u})
				}
			case 7:
				if rng.IntN(2) == 0 {
					id := fmt.Sprintf("g-new-%d-%d", round, i)
					t.Groups[id] = &graphtest.Group{DisplayName: id, SecurityEnabled: true,
						Members: []graphtest.Ref{{Type: "#microsoft.graph.user", ID: u}, {Type: "#microsoft.graph.group", ID: groups[0]}}}
					groups = append(groups, id)
				} else {
					delete(t.Groups, groups[len(groups)-1])
					groups = groups[:len(groups)-1]
				}
			case 8:
				if len(units) > 0 {
					un := t.Units[units[rng.IntN(len(units))]]
					if len(un.Members) > 0 && rng.IntN(2) == 0 {
						un.Members = un.Members[1:]
					} else {
						un.Members = append(un.Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: u})
					}
				}
			}
		}
	}
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func round(t *testing.T, s *entra.Syncer) *entra.Round {
	t.Helper()
	r, err := s.Next(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Commit(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	return r
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestFileStateLogEqualsWholeSave runs rounds of random changes through two syncers, one saving its state to a
// FileState (base and log), the other whole: after every round a fresh load of the file gives exactly the state
// the whole save holds, whether the log is never compacted, compacted every few rounds or at the default.
func TestFileStateLogEqualsWholeSave(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fraction float64
		gz       bool
		shuffle  bool // Graph's orders, empty pages and replays (graphtest.Server.Shuffle)
	}{
		{"log only", 1000, false, false},
		{"compacted often", 2, true, false},
		{"default", 0, true, false},
		{"shuffled", 0, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			if tc.gz {
				path += ".gz"
			}
			fs := &entra.FileState{Path: path, CompactFraction: tc.fraction}
			s, g, _ := newSyncer(t, fs)
			g.Shuffle = tc.shuffle
			whole := &wholeStore{}
			ref := &entra.Syncer{Tenant: tenant, Graph: s.Graph, Labels: s.Labels, Store: whole}
			rng := rand.New(rand.NewPCG(25, uint64(len(tc.name))))
			appended, compacted := 0, 0
			for i := 0; i < 30; i++ {
				if i > 0 {
					g.Update(randomChanges(rng, i, 1+rng.IntN(8)))
				}
				logBefore, baseBefore := fileSize(t, fs.LogPath()), fileSize(t, path)
				r := round(t, s)
				round(t, ref)
				if i > 0 && r.Full {
					t.Fatalf("round %d read everything", i)
				}
				switch logAfter := fileSize(t, fs.LogPath()); {
				case logAfter > logBefore:
					appended++
					if fileSize(t, path) != baseBefore {
						t.Fatalf("round %d appended to the log and rewrote the base", i)
					}
				case logAfter == 0:
					compacted++
				}
				mustEqualState(t, fmt.Sprintf("round %d", i), load(t, &entra.FileState{Path: path}), load(t, whole))
				// The snapshot built incrementally round after round (build reusing the previous one) is the one
				// a process starting from the saved state builds from scratch.
				fresh := &entra.Syncer{Tenant: tenant, Graph: s.Graph, Labels: s.Labels, Store: &entra.FileState{Path: path}}
				fr, err := fresh.Next(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if d := changeStrings(entra.Diff(fr.Prev, s.Snapshot())); len(d) > 0 || !proto.Equal(fr.Prev, s.Snapshot()) {
					t.Fatalf("round %d: the incremental snapshot differs from one built from the saved state: %v", i, d)
				}
			}
			t.Logf("%d rounds appended, %d wrote the base", appended, compacted)
			// Each case must exercise what it is named for.
			if tc.fraction == 1000 && compacted != 1 || appended == 0 || tc.fraction == 2 && compacted < 3 {
				t.Fatalf("%d rounds appended, %d wrote the base", appended, compacted)
			}
		})
	}
}

// copyFiles returns the contents of the state's files, to put back as a crash would have left them.
func copyFiles(t *testing.T, paths ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		out[p] = b
	}
	return out
}

func restore(t *testing.T, files map[string][]byte) {
	t.Helper()
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestFileStateTornRecordIsReread: a crash in the middle of appending leaves a torn last record; loading
// ignores it (the state and its delta links are the previous round's), the next round reads the same changes
// from Graph again and appends after the whole records.
func TestFileStateTornRecordIsReread(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json.gz")
	fs := &entra.FileState{Path: path, CompactFraction: 1000}
	s, g, _ := newSyncer(t, fs)
	whole := &wholeStore{}
	ref := &entra.Syncer{Tenant: tenant, Graph: s.Graph, Labels: s.Labels, Store: whole}
	rng := rand.New(rand.NewPCG(1, 2))
	round(t, s)
	round(t, ref)
	g.Update(randomChanges(rng, 1, 5))
	round(t, s)
	round(t, ref)
	afterFirstDelta := load(t, whole)
	whole1 := slices.Clone(whole.data)
	g.Update(randomChanges(rng, 2, 5))
	lost := round(t, s)
	if len(lost.Changes) == 0 {
		t.Fatal("the round to lose changed nothing")
	}
	for _, tc := range []struct {
		name string
		torn func(log []byte, first int) []byte
	}{
		{"inside the header", func(log []byte, first int) []byte { return log[:first+3] }},
		{"header only", func(log []byte, first int) []byte { return log[:first+8] }},
		{"inside the payload", func(log []byte, first int) []byte { return log[:first+8+10] }},
		{"last byte missing", func(log []byte, _ int) []byte { return log[:len(log)-1] }},
		{"garbled payload", func(log []byte, _ int) []byte {
			c := slices.Clone(log)
			c[len(c)-2] ^= 0xff
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := copyFiles(t, path, fs.LogPath())
			defer restore(t, files)
			log := files[fs.LogPath()]
			if err := os.WriteFile(fs.LogPath(), tc.torn(log, firstRecordLen(log)), 0o600); err != nil {
				t.Fatal(err)
			}
			resumedStore := &entra.FileState{Path: path, CompactFraction: 1000}
			mustEqualState(t, "after the torn append", load(t, resumedStore), afterFirstDelta)
			resumed := &entra.Syncer{Tenant: tenant, Graph: s.Graph, Labels: s.Labels, Store: resumedStore}
			again := round(t, resumed)
			if again.Full || !slices.Equal(changeStrings(again.Changes), changeStrings(lost.Changes)) {
				t.Fatalf("re-read round: full %v, changes %v; want %v", again.Full, changeStrings(again.Changes), changeStrings(lost.Changes))
			}
			ref := &entra.Syncer{Tenant: tenant, Graph: s.Graph, Labels: s.Labels, Store: &wholeStore{data: whole1}}
			round(t, ref)
			mustEqualState(t, "after the re-read round", load(t, &entra.FileState{Path: path}), load(t, ref.Store))
		})
	}
}

// firstRecordLen is the length of the log's first record, header included.
func firstRecordLen(log []byte) int {
	return 8 + int(uint32(log[0])|uint32(log[1])<<8|uint32(log[2])<<16|uint32(log[3])<<24)
}

// TestFileStateCrashDuringCompaction: a compaction writes the new base and then empties the log. A crash
// before the rename leaves the old base and log (the state before the compacting round); a crash between the
// rename and emptying the log leaves the new base beside the old records, which must not be applied to it.
func TestFileStateCrashDuringCompaction(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json.gz")
	fs := &entra.FileState{Path: path, CompactFraction: 1000}
	s, g, _ := newSyncer(t, fs)
	whole := &wholeStore{}
	ref := &entra.Syncer{Tenant: tenant, Graph: s.Graph, Labels: s.Labels, Store: whole}
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < 4; i++ {
		g.Update(randomChanges(rng, i, 6))
		round(t, s)
		round(t, ref)
	}
	before := copyFiles(t, path, fs.LogPath())
	stateBefore := load(t, whole)
	if len(before[fs.LogPath()]) == 0 {
		t.Fatal("no log to compact")
	}
	fs.CompactFraction = 1e-9 // the next round compacts
	g.Update(randomChanges(rng, 9, 6))
	round(t, s)
	round(t, ref)
	if fileSize(t, fs.LogPath()) != 0 {
		t.Fatal("the round did not compact")
	}
	after := copyFiles(t, path, fs.LogPath())
	stateAfter := load(t, whole)

	restore(t, map[string][]byte{path: after[path], fs.LogPath(): before[fs.LogPath()]})
	mustEqualState(t, "new base, old log", load(t, &entra.FileState{Path: path}), stateAfter)
	restore(t, before)
	mustEqualState(t, "old base, old log", load(t, &entra.FileState{Path: path}), stateBefore)

	// After the crash between rename and truncation, the next round appends over the stale records.
	restore(t, map[string][]byte{path: after[path], fs.LogPath(): before[fs.LogPath()]})
	resumed := &entra.Syncer{Tenant: tenant, Graph: s.Graph, Labels: s.Labels, Store: &entra.FileState{Path: path, CompactFraction: 1000}}
	g.Update(randomChanges(rng, 10, 6))
	round(t, resumed)
	round(t, ref)
	mustEqualState(t, "a round after the crash", load(t, &entra.FileState{Path: path}), load(t, whole))
}

// TestOldStateFileMigrates: a state file written whole before the log existed loads as it was, is rewritten
// with a log id on that first load, and the next round appends to the log.
func TestOldStateFileMigrates(t *testing.T) {
	s, g, _ := newSyncer(t, nil)
	whole := &wholeStore{}
	s.Store = whole
	round(t, s)
	path := filepath.Join(t.TempDir(), "state.json")
	if strings.Contains(string(whole.data), "logId") {
		t.Fatal("the whole-file state already has a log id")
	}
	if err := os.WriteFile(path, whole.data, 0o600); err != nil {
		t.Fatal(err)
	}
	fs := &entra.FileState{Path: path}
	mustEqualState(t, "old state file", load(t, fs), load(t, whole))
	if b, _ := os.ReadFile(path); !strings.Contains(string(b), `"logId"`) {
		t.Fatal("loading did not migrate the state file")
	}
	resumed := &entra.Syncer{Tenant: tenant, Graph: s.Graph, Labels: s.Labels, Store: fs}
	g.Update(func(t *graphtest.Tenant) {
		t.Users["u-migrated"] = &graphtest.User{DisplayName: "New", UserType: "Member"}
	})
	if r := round(t, resumed); r.Full {
		t.Fatal("the migrated state did not resume with deltas")
	}
	round(t, s)
	if fileSize(t, fs.LogPath()) == 0 {
		t.Fatal("the round after migration did not append")
	}
	mustEqualState(t, "after a round", load(t, &entra.FileState{Path: path}), load(t, whole))
}

// TestFileStateRoundCostsWhatChanged: adding one member to a group of 2,000 appends a record of a few hundred
// bytes (the new member and the links), not the group; a round that changed nothing appends only the links.
func TestFileStateRoundCostsWhatChanged(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json.gz")
	fs := &entra.FileState{Path: path, CompactFraction: 1000}
	s, g, _ := newSyncer(t, fs)
	round(t, s)
	big := graphtest.GroupDyn
	g.Update(func(t *graphtest.Tenant) {
		for i := 0; i < 2000; i++ {
			id := fmt.Sprintf("u-bulk-%04d", i)
			t.Users[id] = &graphtest.User{DisplayName: id, UserType: "Member"}
			t.Groups[big].Members = append(t.Groups[big].Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: id})
		}
	})
	round(t, s)
	bulk := fileSize(t, fs.LogPath())
	g.Update(func(t *graphtest.Tenant) {
		t.Groups[big].Members = append(t.Groups[big].Members, graphtest.Ref{Type: "#microsoft.graph.user", ID: graphtest.UserGina})
	})
	round(t, s)
	one := fileSize(t, fs.LogPath()) - bulk
	round(t, s)
	none := fileSize(t, fs.LogPath()) - bulk - one
	if bulk < 2000*20 || one <= none || one > 1000 || none > 600 {
		t.Fatalf("appended %d bytes for 2,000 users and members, %d for one member, %d for nothing; want the last two under 1,000 and 600", bulk, one, none)
	}
}
