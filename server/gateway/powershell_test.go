package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/server/servertest"
	"google.golang.org/grpc/codes"
)

// No PowerShell runs on this project's machines, so the README's Invoke-RestMethod examples are checked here
// against what PowerShell sends and how it reads the answer, as its source and documentation describe them:
//
//   - ConvertTo-Json indents its output: PowerShell 7 by two spaces (Newtonsoft.Json), Windows PowerShell 5.1 by
//     four with two spaces after each colon (JavaScriptSerializer, reformatted); lines end in CRLF on Windows.
//   - Windows PowerShell 5.1 (.NET Framework's HttpWebRequest) sends "Expect: 100-continue" with every POST
//     body and waits for the 100 before sending it; without charset in -ContentType it encodes the body as
//     ISO-8859-1.
//   - Invoke-RestMethod converts a body to objects when its media type is application/json (the type before
//     any ";", compared without case: ContentHelper.CheckIsJson). Any other type is tried as XML, then as one
//     JSON document, and returned as a string when neither parses, so what it makes of an NDJSON stream
//     depends on its length; the README reads streams with Invoke-WebRequest instead.
//
// powerShellRequests are the README's CanAddMember request as PowerShell 7 and 5.1 send it.
var powerShellRequests = []struct {
	name   string
	body   string
	header map[string]string
}{
	{
		name: "PowerShell 7 on Linux",
		body: "{\n  \"actorId\": \"u-gary\",\n  \"memberId\": \"grp-engineering\",\n  \"tenantId\": \"contoso\",\n  \"groupId\": \"grp-finance\"\n}",
		header: map[string]string{
			"Content-Type": "application/json",
			"User-Agent":   "Mozilla/5.0 (Linux; Debian 12; en-US) PowerShell/7.4.6",
		},
	},
	{
		name: "PowerShell 7 on Windows, charset given",
		body: "{\r\n  \"groupId\": \"grp-finance\",\r\n  \"tenantId\": \"contoso\",\r\n  \"actorId\": \"u-gary\",\r\n  \"memberId\": \"grp-engineering\"\r\n}",
		header: map[string]string{
			"Content-Type": "application/json; charset=utf-8",
			"User-Agent":   "Mozilla/5.0 (Windows NT 10.0; Microsoft Windows 10.0.22631; en-US) PowerShell/7.4.6",
		},
	},
	{
		name: "Windows PowerShell 5.1",
		body: "{\r\n    \"memberId\":  \"grp-engineering\",\r\n    \"actorId\":  \"u-gary\",\r\n    \"groupId\":  \"grp-finance\",\r\n    \"tenantId\":  \"contoso\"\r\n}",
		header: map[string]string{
			"Content-Type": "application/json",
			"Expect":       "100-continue",
			"Connection":   "Keep-Alive",
			"User-Agent":   "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.4391",
		},
	},
}

func TestPowerShellShapedRequests(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true})
	// A client that waits for "100 Continue" as .NET Framework does (it would send the body after 350 ms
	// without one; this one would wait 10 s, so a missing 100 shows as a failed Got100Continue, not a slow test).
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{ExpectContinueTimeout: 10 * time.Second}}
	for _, tt := range powerShellRequests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, srv.HTTPURL+"/v1/canAddMember", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			continued := false
			req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{Got100Continue: func() { continued = true }}))
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %s", resp.StatusCode, body)
			}
			if tt.header["Expect"] != "" && !continued {
				t.Error("no 100 Continue before the body: Windows PowerShell would wait 350 ms on every call")
			}
			if !powerShellParsesJSON(resp.Header.Get("Content-Type")) {
				t.Errorf("Content-Type %q: Invoke-RestMethod would not convert the answer to objects", resp.Header.Get("Content-Type"))
			}
			// What the README's script reads: $r.decision.verdict and each violation's rule and path.
			var r struct {
				Decision struct {
					Verdict    string
					Violations []struct {
						Rule string
						Path []string
					}
				}
			}
			if err := json.Unmarshal(body, &r); err != nil {
				t.Fatal(err)
			}
			var lines []string
			for _, v := range r.Decision.Violations {
				lines = append(lines, v.Rule+": "+strings.Join(v.Path, " -> "))
			}
			want := []string{
				"RULE_LABEL_BLOCKS_GUESTS_TRANSITIVE: grp-engineering -> grp-eng-contractors -> u-frank",
				"RULE_NESTED_GROUP_UNLABELED: grp-engineering -> grp-finance",
			}
			if r.Decision.Verdict != "VERDICT_DENY" || !slices.Equal(lines, want) {
				t.Errorf("verdict %s, lines %q; want VERDICT_DENY, %q", r.Decision.Verdict, lines, want)
			}
		})
	}
}

// TestPowerShellReadsStreams follows the README's EffectiveGroups example: the answer is not labelled as JSON
// (Invoke-RestMethod would guess: one message parses as a JSON document, several do not), so the script takes
// the raw bytes from Invoke-WebRequest, decodes them as UTF-8, splits them into lines and converts each line on
// its own. Whether the stream is one message or several, that gives every group.
func TestPowerShellReadsStreams(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true})
	want := []string{"grp-partners", "grp-project-x", "grp-marketing", "grp-vendors"}
	for _, tt := range []struct {
		name, body string
		messages   int
	}{
		{"one message", `{"tenantId":"contoso","principalId":"u-gina"}`, 1},
		{"two messages", `{"tenantId":"contoso","principalId":"u-gina","pageSize":2}`, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			a := do(t, srv.HTTPURL, call{path: "/v1/effectiveGroups", body: tt.body})
			if a.code != http.StatusOK || powerShellParsesJSON(a.header.Get("Content-Type")) {
				t.Fatalf("HTTP %d, Content-Type %q", a.code, a.header.Get("Content-Type"))
			}
			var got []string
			messages := 0
			for _, line := range strings.Split(string(a.body), "\n") { // -split "`n" | Where-Object { $_ }
				if line == "" {
					continue
				}
				messages++
				var msg struct {
					Result struct{ Groups []struct{ ID string } }
				} // ($_ | ConvertFrom-Json).result.groups
				if err := json.Unmarshal([]byte(line), &msg); err != nil {
					t.Fatalf("line %q: %v", line, err)
				}
				for _, g := range msg.Result.Groups {
					got = append(got, g.ID)
				}
			}
			if messages != tt.messages || !slices.Equal(got, want) {
				t.Errorf("%d lines with groups %q, want %d with %q", messages, got, tt.messages, want)
			}
		})
	}
}

// TestPowerShellNonASCII: an answer with non-ASCII text (here the refusal of an id outside [A-Za-z0-9._@:-],
// which quotes it; display names are the usual case) names its charset, which Windows PowerShell 5.1 would
// otherwise take for ISO-8859-1; and a body that 5.1 encoded as ISO-8859-1 (no charset in -ContentType) is
// refused with 400 and the reason, not read as something else.
func TestPowerShellNonASCII(t *testing.T) {
	srv := servertest.StartWith(t, servertest.Options{HTTP: true})
	a := do(t, srv.HTTPURL, call{path: "/v1/canAddMember",
		body: `{"tenantId":"contoso","groupId":"grp-zoë","memberId":"u-erin","actorId":"u-gary"}`})
	if a.code != http.StatusBadRequest || a.header.Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("HTTP %d, Content-Type %q", a.code, a.header.Get("Content-Type"))
	}
	if st := statusOf(t, a.body); !strings.Contains(st.Message(), "grp-zoë") {
		t.Errorf("message %q does not name grp-zoë in UTF-8", st.Message())
	}

	latin1 := []byte(`{"tenantId":"contoso","groupId":"grp-zo` + "\xeb" + `","memberId":"u-erin","actorId":"u-gary"}`)
	resp, err := httpClient.Post(srv.HTTPURL+"/v1/canAddMember", "application/json", bytes.NewReader(latin1))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if st := statusOf(t, body); resp.StatusCode != http.StatusBadRequest || st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "UTF-8") {
		t.Errorf("ISO-8859-1 body: HTTP %d, status %v %q; want 400 INVALID_ARGUMENT naming UTF-8", resp.StatusCode, st.Code(), st.Message())
	}
}

// powerShellParsesJSON is ContentHelper.IsJson: the media type before any parameter, without case, is one of
// the JSON types.
func powerShellParsesJSON(contentType string) bool {
	media, _, _ := strings.Cut(contentType, ";")
	switch strings.ToLower(strings.TrimSpace(media)) {
	case "application/json", "text/json", "application/x-javascript", "text/x-javascript", "application/javascript", "text/javascript":
		return true
	}
	return false
}
