package entra_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"testing"

	"github.com/groupgate/groupgate/entra"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
)

// EncodeState writes the state piece by piece; it must write what encoding/json writes for the whole value
// (the format other readers of the state file and of pgstate's rows know). Groups hold at most one member and
// owner of each kind here: their lists are written from maps, in no fixed order.
func TestEncodeStateIsJSONMarshal(t *testing.T) {
	yes := true
	full := func() *entra.State {
		return &entra.State{
			Version: 1, Tenant: "contoso", Endpoint: "http://127.0.0.1:1/<graph>&", UsersLink: "u?$deltatoken=1",
			GroupsLink: "g?$deltatoken=2", UnitsLink: "a?$deltatoken=3",
			Mirror: &entra.Mirror{
				Users: map[string]entra.User{"u-2": {Name: "Bob"}, "u-1": {Name: "Ann <admin>", Guest: true}, "u-3": {},
					"u-4": {Guest: true}, "u-\"5\"": {Name: "Zoë \u2028 \x01 \xff \\ \x7f"}},
				Groups: map[string]*entra.Group{
					"g-2": {Name: "Finance & Co", Kind: pb.GroupKind_GROUP_KIND_MICROSOFT_365, Dynamic: true, OnPremises: true,
						RoleAssignable: true, Label: "l-1", Members: map[string]byte{"u-1": 'u', "g-1": 'g', "s-1": 's'},
						Owners: map[string]byte{"u-2": 'u'}},
					"g-1": {Name: "Empty", Kind: pb.GroupKind_GROUP_KIND_SECURITY},
					"g-4": {Label: "l-1", Members: map[string]byte{"u-4": 'u', "x": 0}, Owners: map[string]byte{}},
					"g-3": nil,
				},
				Units: map[string]*entra.Unit{"au-1": {Name: "Paris", Restricted: true}},
			},
			Overlay: &entra.Overlay{
				Roles:             map[string][]string{"u-1": {"Global Administrator"}},
				ServicePrincipals: map[string]entra.ServicePrincipal{"s-1": {Name: "app", Permissions: []string{"Group.Read.All"}}},
				Settings:          entra.Settings{Licenses: []string{"ENTRA_ID_P1"}, AllowGuests: &yes},
				Assignments:       []entra.Assignment{{Principal: "u-2", Role: "r-1", Scope: "/administrativeUnits/au-1"}},
				Definitions:       map[string]entra.RoleDef{"r-1": {Name: "Helpdesk", Actions: []string{"a"}}},
			},
			Labels: []json.RawMessage{json.RawMessage(`{"id":"l-1"}`)},
			LogID:  "0011223344556677",
		}
	}
	cases := map[string]*entra.State{"every field": full()}
	s := full()
	s.UnitsLink, s.Mirror.Units, s.Labels, s.LogID = "", map[string]*entra.Unit{}, nil, ""
	cases["omitted fields"] = s
	s = full()
	s.Mirror.Users, s.Mirror.Groups, s.Mirror.Units, s.Overlay = nil, nil, nil, nil
	cases["nil maps"] = s
	s = full()
	s.Mirror = nil
	cases["no mirror"] = s
	for name, s := range cases {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, '\n')
		var got bytes.Buffer
		if err := entra.EncodeState(&got, s, false); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: EncodeState wrote\n%s\nencoding/json writes\n%s", name, got.Bytes(), want)
		}
		got.Reset()
		if err := entra.EncodeState(&got, s, true); err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(&got)
		if err != nil {
			t.Fatal(err)
		}
		if unzipped, err := io.ReadAll(zr); err != nil || !bytes.Equal(unzipped, want) {
			t.Errorf("%s: gzipped EncodeState unzips to %q (%v), want %q", name, unzipped, err, want)
		}
	}

	// Lists of more than one id come from maps in any order: compared decoded.
	big := &entra.Group{Name: "big", Members: map[string]byte{}, Owners: map[string]byte{"u-1": 'u', "u-2": 'u', "s-1": 's'}}
	for i := range 1000 {
		big.Members[fmt.Sprintf("u-%d", i)] = "ugs"[i%3]
	}
	s = &entra.State{Version: 1, Mirror: &entra.Mirror{Users: map[string]entra.User{"u-1": {Name: "Ann"}},
		Groups: map[string]*entra.Group{"g-5": big}}, Overlay: full().Overlay}
	var got bytes.Buffer
	if err := entra.EncodeState(&got, s, true); err != nil {
		t.Fatal(err)
	}
	back, err := entra.UnmarshalState(got.Bytes(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Mirror, s.Mirror) || !reflect.DeepEqual(back.Overlay, s.Overlay) {
		t.Errorf("a state with a group of 1,000 members decodes differently from what was encoded")
	}
}
