package graphtest

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, s *Server, link string, v any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, link, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+s.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatal(err)
		}
	}
	return resp
}

// A 410 names, in Location, the initial query with an empty $deltatoken (concepts/delta-query-overview.md,
// "Synchronization reset"): following it reads everything again with the first request's $select.
func TestResyncLocationIsTheInitialQuery(t *testing.T) {
	s := New(Crafted())
	defer s.Close()
	type page struct {
		Context   string           `json:"@odata.context"`
		Value     []map[string]any `json:"value"`
		NextLink  string           `json:"@odata.nextLink"`
		DeltaLink string           `json:"@odata.deltaLink"`
	}
	readAll := func(link string) (n int, delta string) {
		for link != "" {
			var p page
			if resp := get(t, s, link, &p); resp.StatusCode != http.StatusOK {
				t.Fatalf("GET %s: %d", link, resp.StatusCode)
			}
			if p.Context != "https://graph.microsoft.com/v1.0/$metadata#users" {
				t.Errorf("@odata.context %q", p.Context)
			}
			n += len(p.Value)
			for _, e := range p.Value {
				if _, ok := e["userType"]; !ok {
					t.Errorf("entry %v lacks the selected userType", e)
				}
			}
			link, delta = p.NextLink, p.DeltaLink
		}
		return n, delta
	}
	full, delta := readAll(s.URL + "/v1.0/users/delta?$select=id,displayName,userType")
	if full == 0 || delta == "" {
		t.Fatalf("full read: %d users, deltaLink %q", full, delta)
	}
	s.ExpireDeltaLinks()
	resp := get(t, s, delta, nil)
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("expired deltaLink: %d, want 410", resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	if !strings.HasSuffix(loc, "$deltatoken=") {
		t.Fatalf("Location %q lacks an empty $deltatoken", loc)
	}
	if again, _ := readAll(loc); again != full {
		t.Fatalf("following Location read %d users, the full read %d", again, full)
	}
}

func TestBetaContext(t *testing.T) {
	s := New(Crafted())
	defer s.Close()
	var p struct {
		Context string `json:"@odata.context"`
	}
	get(t, s, s.URL+"/beta/settings", &p)
	if p.Context != "https://graph.microsoft.com/beta/$metadata#settings" {
		t.Fatalf("@odata.context %q", p.Context)
	}
}

// Selecting members but not owners: a group with owners still comes, its members split across entries, and
// no owners@delta (the loop over entries once waited for owners it never handed out).
func TestGroupsDeltaMembersWithoutOwners(t *testing.T) {
	s := New(Crafted())
	defer s.Close()
	link := s.URL + "/v1.0/groups/delta?$select=id,displayName,members"
	entries := 0
	for link != "" {
		var p struct {
			Value    []map[string]any `json:"value"`
			NextLink string           `json:"@odata.nextLink"`
		}
		if resp := get(t, s, link, &p); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", link, resp.StatusCode)
		}
		for _, e := range p.Value {
			entries++
			if _, ok := e["owners@delta"]; ok {
				t.Errorf("owners@delta without owners selected: %v", e)
			}
		}
		link = p.NextLink
	}
	// 7 groups; g-confidential's 6 members come 3 per entry.
	if entries != 8 {
		t.Fatalf("%d entries, want 8", entries)
	}
}
