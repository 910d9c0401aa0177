package graphtest

import (
	"encoding/json"
	"net/http"
	"slices"
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
	// 8 groups; g-confidential's 6 members come 3 per entry.
	if entries != 9 {
		t.Fatalf("%d entries, want 9", entries)
	}
}

// readPages follows nextLinks from link and returns every entry and the links it followed after the first.
func readPages(t *testing.T, s *Server, link string) (entries []map[string]any, links []string, delta string) {
	t.Helper()
	for link != "" {
		var p struct {
			Value     []map[string]any `json:"value"`
			NextLink  string           `json:"@odata.nextLink"`
			DeltaLink string           `json:"@odata.deltaLink"`
		}
		if resp := get(t, s, link, &p); resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", link, resp.StatusCode)
		}
		entries = append(entries, p.Value...)
		if p.NextLink != "" {
			links = append(links, p.NextLink)
		}
		link, delta = p.NextLink, p.DeltaLink
	}
	return entries, links, delta
}

// A list's nextLink repeats the first request's query (concepts/paging.md); a delta query's carries only its
// token, and a $select added to it is refused, as Graph refuses $select with $skipToken on a delta query
// (concepts/delta-query-overview.md).
func TestNextLinksCarryTheQuery(t *testing.T) {
	s := New(Crafted())
	defer s.Close()
	s.OtherPage = 1
	_, links, _ := readPages(t, s, s.URL+"/v1.0/servicePrincipals?$select=id,appId,displayName")
	if len(links) == 0 {
		t.Fatal("no nextLink: the test needs more service principals than a page")
	}
	for _, l := range links {
		if !strings.Contains(l, "$select=id%2CappId%2CdisplayName") || !strings.Contains(l, "$skiptoken=") {
			t.Errorf("list nextLink %s lacks the first request's $select or its $skiptoken", l)
		}
	}

	_, links, _ = readPages(t, s, s.URL+"/v1.0/users/delta?$select=id,displayName,userType")
	if len(links) == 0 {
		t.Fatal("no nextLink on users/delta")
	}
	for _, l := range links {
		if strings.Contains(l, "select") {
			t.Errorf("delta nextLink %s carries $select outside its token", l)
		}
	}
	var p struct {
		Value    []map[string]any `json:"value"`
		NextLink string           `json:"@odata.nextLink"`
	}
	get(t, s, s.URL+"/v1.0/users/delta?$select=id,displayName,userType", &p)
	if resp := get(t, s, p.NextLink+"&$select=id", nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("a delta nextLink with $select added: %d, want 400", resp.StatusCode)
	}
}

// Removals carry @removed with the reason Graph gives: "changed" for a user and a Microsoft 365 group (soft
// deleted first), "deleted" for a security group (deleted for good) (concepts/delta-query-users.md,
// concepts/delta-query-groups.md).
func TestRemovedReasons(t *testing.T) {
	s := New(Crafted())
	defer s.Close()
	_, _, users := readPages(t, s, s.URL+"/v1.0/users/delta?$select=id,displayName,userType")
	_, _, groups := readPages(t, s, s.URL+"/v1.0/groups/delta?$select=id,displayName,groupTypes,members")
	s.Update(func(t *Tenant) {
		delete(t.Users, UserGina)
		delete(t.Groups, GroupM365)
		delete(t.Groups, GroupMail)
	})
	reasons := map[string]any{}
	for _, link := range []string{users, groups} {
		entries, _, _ := readPages(t, s, link)
		for _, e := range entries {
			if r, ok := e["@removed"].(map[string]any); ok {
				reasons[e["id"].(string)] = r["reason"]
			}
		}
	}
	want := map[string]any{UserGina: "changed", GroupM365: "changed", GroupMail: "deleted"}
	if len(reasons) != len(want) {
		t.Fatalf("removed %v, want %v", reasons, want)
	}
	for id, r := range want {
		if reasons[id] != r {
			t.Errorf("%s removed with reason %v, want %v", id, reasons[id], r)
		}
	}
}

// administrativeUnits/delta (api-reference/v1.0/api/administrativeunit-delta.md) pages like groups/delta; a
// full read lists every member in members@delta typed by @odata.type, a later round only the member that left
// (with @removed) and the unit that went (id and @removed).
func TestUnitsDelta(t *testing.T) {
	s := New(Crafted())
	defer s.Close()
	s.GroupPage = 1
	entries, links, delta := readPages(t, s, s.URL+"/v1.0/directory/administrativeUnits/delta?$select=id,displayName,isMemberManagementRestricted,members")
	if len(entries) != 2 || len(links) != 1 || delta == "" {
		t.Fatalf("%d entries over %d nextLinks, deltaLink %q; want 2 units a page each, then a deltaLink", len(entries), len(links), delta)
	}
	vault := entries[1]
	if vault["id"] != UnitVault || vault["isMemberManagementRestricted"] != true || len(vault["members@delta"].([]any)) != 2 {
		t.Errorf("vault entry %v", vault)
	}
	s.Update(func(t *Tenant) {
		v := t.Units[UnitVault]
		v.Members = slices.DeleteFunc(v.Members, func(r Ref) bool { return r.ID == "u-m4" })
		delete(t.Units, UnitEMEA)
	})
	entries, _, _ = readPages(t, s, delta)
	if len(entries) != 2 {
		t.Fatalf("delta entries %v; want the vault's change and the EMEA unit's removal", entries)
	}
	members := entries[0]["members@delta"].([]any)
	if entries[0]["id"] != UnitVault || len(members) != 1 || members[0].(map[string]any)["id"] != "u-m4" || members[0].(map[string]any)["@removed"] == nil {
		t.Errorf("vault change %v; want u-m4 @removed", entries[0])
	}
	if entries[1]["id"] != UnitEMEA || entries[1]["@removed"] == nil {
		t.Errorf("EMEA removal %v", entries[1])
	}
}

// Shuffle: the first page holds no entry but a nextLink, g-confidential's entries are not consecutive, and one
// entry comes twice.
func TestShuffle(t *testing.T) {
	s := New(Crafted())
	defer s.Close()
	s.Shuffle = true
	link := s.URL + "/v1.0/groups/delta?$select=id,displayName,members"
	var first struct {
		Value    []map[string]any `json:"value"`
		NextLink string           `json:"@odata.nextLink"`
	}
	get(t, s, link, &first)
	if len(first.Value) != 0 || first.NextLink == "" {
		t.Fatalf("first page %d entries, nextLink %q; want none and a nextLink", len(first.Value), first.NextLink)
	}
	entries, _, delta := readPages(t, s, link)
	if delta == "" {
		t.Fatal("no deltaLink")
	}
	var conf []int
	seen := map[string]int{}
	for i, e := range entries {
		b, _ := json.Marshal(e)
		seen[string(b)]++
		if e["id"] == GroupConf {
			conf = append(conf, i)
		}
	}
	if len(conf) != 2 || conf[1] == conf[0]+1 {
		t.Errorf("g-confidential at %v; want its 2 entries apart", conf)
	}
	replays := 0
	for _, n := range seen {
		replays += n - 1
	}
	if len(entries) != 10 || replays != 1 {
		t.Errorf("%d entries with %d replays; want the 9 entries and one of them again", len(entries), replays)
	}
}
