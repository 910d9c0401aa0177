package deploy

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/groupgate/groupgate/directory"
	"github.com/groupgate/groupgate/directory/demo"
	pb "github.com/groupgate/groupgate/gen/groupgate/v1"
	"google.golang.org/grpc/metadata"
	"sigs.k8s.io/yaml"
)

// kustomize renders a kustomize directory offline with kubectl kustomize, or kustomize build where kubectl is
// missing (.ci/run installs kustomize then: Debian's kubectl, 1.20, embeds a kustomize too old for these files).
// Without either the test skips, except in CI.
func kustomize(t *testing.T, dir string) string {
	t.Helper()
	var cmd *exec.Cmd
	if kubectl, err := exec.LookPath("kubectl"); err == nil {
		cmd = exec.Command(kubectl, "kustomize", dir)
	} else if k, err := exec.LookPath("kustomize"); err == nil {
		cmd = exec.Command(k, "build", dir)
	} else {
		if os.Getenv("CI") != "" {
			t.Fatal("neither kubectl nor kustomize: CI must render deploy/kubernetes")
		}
		t.Skip("neither kubectl nor kustomize (go install sigs.k8s.io/kustomize/kustomize/v5@v5.5.0); CI runs this test")
	}
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, msg)
	}
	return string(out)
}

type object = map[string]any

func documents(t *testing.T, rendered string) []object {
	t.Helper()
	var out []object
	for _, doc := range strings.Split(rendered, "\n---\n") {
		var o object
		if err := yaml.Unmarshal([]byte(doc), &o); err != nil {
			t.Fatalf("rendered YAML: %v\n%s", err, doc)
		}
		if o != nil {
			out = append(out, o)
		}
	}
	return out
}

func get(o object, path ...string) any {
	var v any = o
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

func kindName(o object) string { return fmt.Sprint(o["kind"], "/", get(o, "metadata", "name")) }

// TestKustomizeRenders renders the base and both overlays and checks what SPEC §15 asks of them.
func TestKustomizeRenders(t *testing.T) {
	for _, dir := range []string{"kubernetes", "kubernetes/overlays/postgres", "kubernetes/overlays/memory"} {
		t.Run(dir, func(t *testing.T) {
			kinds := map[string]object{}
			for _, o := range documents(t, kustomize(t, dir)) {
				kinds[kindName(o)] = o
			}
			want := []string{"Deployment/groupgate", "Service/groupgate", "PodDisruptionBudget/groupgate",
				"NetworkPolicy/groupgate", "ServiceAccount/groupgate"}
			if !strings.HasSuffix(dir, "memory") {
				want = append(want, "Deployment/groupgate-sync", "ServiceAccount/groupgate-sync")
			}
			for _, k := range want {
				if kinds[k] == nil {
					t.Errorf("%s: no %s", dir, k)
				}
			}
			serve := kinds["Deployment/groupgate"]
			if serve == nil {
				return
			}
			c := get(serve, "spec", "template", "spec", "containers").([]any)[0].(map[string]any)
			if get(c, "securityContext", "readOnlyRootFilesystem") != true || get(c, "securityContext", "allowPrivilegeEscalation") != false ||
				fmt.Sprint(get(c, "securityContext", "capabilities", "drop")) != "[ALL]" {
				t.Errorf("serve container securityContext: %v", c["securityContext"])
			}
			if get(serve, "spec", "template", "spec", "securityContext", "runAsNonRoot") != true {
				t.Error("serve pod: runAsNonRoot is not set")
			}
			for _, probe := range []string{"readinessProbe", "livenessProbe"} {
				if get(c, probe, "grpc", "port") == nil {
					t.Errorf("serve: %s is not a native gRPC probe: %v", probe, c[probe])
				}
			}
			if get(c, "resources", "limits", "memory") == nil || get(c, "resources", "requests", "cpu") == nil {
				t.Errorf("serve: resources %v", c["resources"])
			}
			if sync := kinds["Deployment/groupgate-sync"]; sync != nil {
				if fmt.Sprint(get(sync, "spec", "replicas")) != "1" {
					t.Errorf("sync replicas %v, want 1", get(sync, "spec", "replicas"))
				}
				if get(sync, "spec", "template", "metadata", "labels", "azure.workload.identity/use") != "true" {
					t.Error("sync pod: no azure.workload.identity/use label")
				}
				if get(kinds["ServiceAccount/groupgate-sync"], "metadata", "annotations", "azure.workload.identity/client-id") == nil {
					t.Error("sync service account: no azure.workload.identity/client-id annotation")
				}
			}
		})
	}
}

// TestKubePlay renders the memory overlay, runs its serve Deployment with podman kube play --network host (the
// image built by scripts/image, the demo tenant as the snapshot file on the claimed volume, the Secret's token
// file) and asks it for health and a decision with the rendered checker token. Adjustments for podman 4.3 on a
// shared host, and nothing else: one replica; free ports through GROUPGATE_LISTEN/GROUPGATE_HTTP_LISTEN (and the
// probes); no containerPorts (podman would publish them, which host networking refuses); Secret volumes as
// hostPath directories holding the rendered Secret's decoded items, as the kubelet writes them (podman 4.3's
// kube play writes a Secret volume's data still base64-encoded, and ignores stringData for listed items); the
// claim's volume created beforehand under a name of its own.
func TestKubePlay(t *testing.T) {
	eng := engine(t)
	if filepath.Base(eng) != "podman" {
		t.Skip("podman kube play needs podman")
	}
	rendered := kustomize(t, "kubernetes/overlays/memory")
	tag := image(t, eng)
	grpcPort, httpPort := freePort(t), freePort(t)
	suffix := fmt.Sprint(time.Now().UnixNano())
	volume := "groupgate-snapshots-test-" + suffix

	var play []object
	var secretVolumes []map[string]any
	secrets := map[string]map[string][]byte{} // name, key: decoded data
	secretDir := t.TempDir()
	checker := ""
	for _, o := range documents(t, rendered) {
		switch kindName(o) {
		case "Deployment/groupgate":
			spec := get(o, "spec").(map[string]any)
			spec["replicas"] = 1
			pod := get(spec, "template", "spec").(map[string]any)
			c := pod["containers"].([]any)[0].(map[string]any)
			c["image"] = "localhost/" + tag
			delete(c, "ports")
			c["env"] = append(c["env"].([]any),
				object{"name": "GROUPGATE_LISTEN", "value": fmt.Sprintf("0.0.0.0:%d", grpcPort)},
				object{"name": "GROUPGATE_HTTP_LISTEN", "value": fmt.Sprintf("0.0.0.0:%d", httpPort)})
			for _, probe := range []string{"readinessProbe", "livenessProbe"} {
				get(c, probe, "grpc").(map[string]any)["port"] = grpcPort
			}
			for _, v := range pod["volumes"].([]any) {
				v := v.(map[string]any)
				if claim, ok := v["persistentVolumeClaim"].(map[string]any); ok {
					claim["claimName"] = volume
				}
				if s, ok := v["secret"].(map[string]any); ok {
					delete(v, "secret")
					v["hostPath"] = object{"path": filepath.Join(secretDir, fmt.Sprint(s["secretName"])), "type": "Directory"}
					secretVolumes = append(secretVolumes, s)
				}
			}
			play = append(play, o)
		case "ConfigMap/" + fmt.Sprint(get(o, "metadata", "name")):
			play = append(play, o)
		}
		if o["kind"] == "Secret" {
			data, _ := o["data"].(map[string]any)
			decoded := map[string][]byte{}
			for k, v := range data {
				b, err := base64.StdEncoding.DecodeString(fmt.Sprint(v))
				if err != nil {
					t.Fatal(err)
				}
				decoded[k] = b
				if k == "tokens" {
					for _, l := range strings.Split(string(b), "\n") {
						if tok, ok := strings.CutPrefix(l, "checker:"); ok {
							checker = tok
						}
					}
				}
			}
			secrets[fmt.Sprint(get(o, "metadata", "name"))] = decoded
		}
	}
	// Each Secret volume as the kubelet would write it: its items (or every key) as files.
	if err := os.Chmod(secretDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, v := range secretVolumes {
		name := fmt.Sprint(v["secretName"])
		data, ok := secrets[name]
		if !ok {
			t.Fatalf("a volume names Secret %s, which the overlay does not render", name)
		}
		dir := filepath.Join(secretDir, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		for k := range data {
			files[k] = k
		}
		if items, ok := v["items"].([]any); ok {
			files = map[string]string{}
			for _, it := range items {
				it := it.(map[string]any)
				files[fmt.Sprint(it["key"])] = fmt.Sprint(it["path"])
			}
		}
		for key, path := range files {
			if err := os.WriteFile(filepath.Join(dir, path), data[key], 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	if len(play) == 0 || checker == "" {
		t.Fatalf("the rendered memory overlay has no serve Deployment or no checker token:\n%s", rendered)
	}

	// The claim's volume, holding the demo tenant as /snapshots/tenant.pb.gz.
	run(t, eng, "volume", "create", volume)
	t.Cleanup(func() { _ = exec.Command(eng, "volume", "rm", "-f", volume).Run() })
	mount := run(t, eng, "volume", "inspect", volume, "--format", "{{.Mountpoint}}")
	if err := directory.WriteSnapshotFile(filepath.Join(mount, "tenant.pb.gz"), demo.Snapshot()); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{mount, filepath.Join(mount, "tenant.pb.gz")} {
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	dir := t.TempDir()
	write := func(name string, objs []object) string {
		var b strings.Builder
		for _, o := range objs {
			y, err := yaml.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			b.WriteString("---\n")
			b.Write(y)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	playFile := write("serve.yaml", play)
	run(t, eng, "kube", "play", "--network", "host", playFile)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := exec.Command(eng, "logs", "groupgate-pod-0-groupgate").CombinedOutput()
			t.Logf("logs:\n%s", out)
		}
		_ = exec.Command(eng, "kube", "down", playFile).Run()
	})

	conn := waitHealthy(t, fmt.Sprintf("127.0.0.1:%d", grpcPort), 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := pb.NewDecisionServiceClient(conn)
	req := &pb.CanAddMemberRequest{TenantId: "contoso", GroupId: "grp-finance", MemberId: "grp-engineering", ActorId: "u-gary"}
	if _, err := c.CanAddMember(ctx, req); err == nil {
		t.Error("CanAddMember without a token answered: the Secret's token file is not in force")
	}
	d, err := c.CanAddMember(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+checker), req)
	if err != nil {
		t.Fatalf("CanAddMember with the checker token: %v", err)
	}
	if d.GetDecision().GetVerdict() != pb.Verdict_VERDICT_DENY {
		t.Errorf("CanAddMember: %v, want DENY", d.GetDecision().GetVerdict())
	}
	pid := run(t, eng, "inspect", "groupgate-pod-0-groupgate", "--format", "{{.State.Pid}}")
	if uid := psUID(t, pid); uid != "65532" {
		t.Errorf("the pod's groupgate runs as uid %s, want 65532", uid)
	}
	if ro := run(t, eng, "inspect", "groupgate-pod-0-groupgate", "--format", "{{.HostConfig.ReadonlyRootfs}}"); ro != "true" {
		t.Errorf("read-only root file system: %s", ro)
	}
}
