package entra

import "testing"

// checkLink follows Graph's absolute nextLink and deltaLink URLs (concepts/paging.md: "include the entire URL in
// the @odata.nextLink property") as long as they stay on the endpoint's host: host names compare without regard
// to case and an explicit default port is the same host (RFC 3986, 3.2.2 and 6.2.3), anything else is refused.
func TestCheckLinkComparesHostsAsURLsDo(t *testing.T) {
	c := &Client{Endpoint: "https://Graph.Microsoft.com"}
	for _, tc := range []struct {
		link string
		ok   bool
	}{
		{"https://graph.microsoft.com/v1.0/users/delta?$skiptoken=abc", true},
		{"https://GRAPH.microsoft.com/v1.0/groups/delta?$deltatoken=abc", true},
		{"https://graph.microsoft.com:443/v1.0/users/delta?$skiptoken=abc", true},
		{"http://graph.microsoft.com/v1.0/users/delta?$skiptoken=abc", false},
		{"https://graph.microsoft.com:8443/v1.0/users/delta", false},
		{"https://graph.microsoft.com.evil.example/v1.0/users/delta", false},
		{"/v1.0/users/delta?$skiptoken=abc", false},
	} {
		if err := c.checkLink(tc.link); (err == nil) != tc.ok {
			t.Errorf("checkLink(%s) = %v, want ok %v", tc.link, err, tc.ok)
		}
	}
}
