package listen

import (
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		network string
		addr    string
		local   bool
		err     string // part of the error message; empty: no error
	}{
		{in: "127.0.0.1:50051", network: "tcp", addr: "127.0.0.1:50051", local: true},
		{in: "[::1]:50051", network: "tcp", addr: "[::1]:50051", local: true},
		{in: "localhost:50051", network: "tcp", addr: "localhost:50051", local: true},
		{in: "0.0.0.0:50051", network: "tcp", addr: "0.0.0.0:50051", local: false},
		{in: "10.1.2.3:50051", network: "tcp", addr: "10.1.2.3:50051", local: false},
		{in: "unix:///run/gg/gg.sock", network: "unix", addr: "/run/gg/gg.sock", local: true},
		{in: "unix:/run/gg/gg.sock", network: "unix", addr: "/run/gg/gg.sock", local: true},
		{in: "unix:gg.sock", network: "unix", addr: "gg.sock", local: true},
		{in: "unix:run/gg.sock", network: "unix", addr: "run/gg.sock", local: true},
		{in: "unix:///tmp/a%20b.sock", network: "unix", addr: "/tmp/a b.sock", local: true},
		{in: "unix://gg.sock", err: "write unix:gg.sock for a path relative"},
		{in: "unix://host/run/gg.sock", err: "as a host, not a path"},
		{in: "unix:", err: "no socket path"},
		{in: "unix://", err: "no socket path"},
		{in: "unix:///run/gg.sock?x=1", err: "percent-encode"},
		{in: "unix-abstract:gg", err: "abstract unix sockets are not supported"},
		{in: "nonsense", err: "missing port"},
	}
	for _, tt := range tests {
		a, err := Parse(tt.in)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q) = %+v, %v; want an error containing %q", tt.in, a, err, tt.err)
			}
			continue
		}
		if err != nil || a.Network != tt.network || a.Addr != tt.addr || a.Local() != tt.local {
			t.Errorf("Parse(%q) = %+v (local %v), %v; want %s %q local %v", tt.in, a, a.Local(), err, tt.network, tt.addr, tt.local)
		}
	}
}

// TestTargetRoundTrip: the target printed for a listener parses back to the path it listens on.
func TestTargetRoundTrip(t *testing.T) {
	for _, path := range []string{"/run/gg.sock", "/tmp/a b%c.sock", "rel/gg.sock"} {
		target := Target(&net.UnixAddr{Name: path, Net: "unix"})
		a, err := Parse(target)
		if err != nil || a.Addr != path {
			t.Errorf("Target(%q) = %q, which parses to %+v, %v", path, target, a, err)
		}
	}
	if got := Target(&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 5}); got != "127.0.0.1:5" {
		t.Errorf("TCP target %q", got)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]fs.FileMode{"0660": 0o660, "600": 0o600, "0o666": 0o666, "0200": 0o200} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "rw", "0888", "01777", "-1", "0", "0440", "0066"} {
		if got, err := ParseMode(in); err == nil {
			t.Errorf("ParseMode(%q) = %v; want an error", in, got)
		}
	}
}

// dialable reports whether a client can connect to the socket at path.
func dialable(path string) bool {
	c, err := net.Dial("unix", path)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func listenOK(t *testing.T, addr string, opts Options) (net.Listener, func()) {
	t.Helper()
	l, cleanup, err := Listen(addr, opts)
	if err != nil {
		t.Fatalf("Listen(%q): %v", addr, err)
	}
	t.Cleanup(cleanup)
	return l, cleanup
}

func TestListenUnixModeAndCleanup(t *testing.T) {
	for _, tt := range []struct {
		mode, want fs.FileMode
	}{{0, 0o660}, {0o600, 0o600}, {0o666, 0o666}} {
		dir := t.TempDir()
		path := filepath.Join(dir, "gg.sock")
		l, cleanup := listenOK(t, "unix://"+path, Options{SocketMode: tt.mode})
		fi, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != tt.want {
			t.Errorf("mode %v: socket file is %v, want a socket with %v", tt.mode, fi.Mode(), tt.want)
		}
		if got := Target(l.Addr()); got != "unix://"+path {
			t.Errorf("target %q, want unix://%s", got, path)
		}
		if !dialable(path) {
			t.Errorf("cannot connect to %s", path)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Errorf("directory holds %d entries, want only the socket (no temporary name left)", len(entries))
		}
		l.Close() // as gRPC's GracefulStop does when it stops accepting
		if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("after Close: %v, want the socket file gone", err)
		}
		cleanup() // harmless after Close, and twice
		cleanup()
	}
}

func TestListenUnixRelativePath(t *testing.T) {
	t.Chdir(t.TempDir())
	l, _ := listenOK(t, "unix:gg.sock", Options{})
	if !dialable("gg.sock") || Target(l.Addr()) != "unix:gg.sock" {
		t.Errorf("relative socket: dialable %v, target %q", dialable("gg.sock"), Target(l.Addr()))
	}
}

// staleSocket leaves a socket file at path with nothing listening, as a SIGKILLed server does.
func staleSocket(t *testing.T, path string) {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if dialable(path) {
		t.Fatal("stale socket still accepts")
	}
}

func TestListenUnixReplacesAStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gg.sock")
	staleSocket(t, path)
	listenOK(t, "unix://"+path, Options{})
	if !dialable(path) {
		t.Error("the new socket does not accept")
	}
}

func TestListenUnixRefuses(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(t *testing.T, path string)
		want    error
		wantMsg string
	}{
		{"a regular file", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, ErrNotSocket, "it is a regular file"},
		{"a directory", func(t *testing.T, path string) {
			if err := os.Mkdir(path, 0o755); err != nil {
				t.Fatal(err)
			}
		}, ErrNotSocket, "it is a directory"},
		{"a symlink to a stale socket", func(t *testing.T, path string) {
			staleSocket(t, path+".real")
			if err := os.Symlink(path+".real", path); err != nil {
				t.Fatal(err)
			}
		}, ErrNotSocket, "it is a symbolic link"},
		{"a live server's socket", func(t *testing.T, path string) {
			listenOK(t, "unix://"+path, Options{})
		}, ErrInUse, "another server is listening"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "gg.sock")
			tt.prepare(t, path)
			before, _ := os.Lstat(path)
			l, _, err := Listen("unix://"+path, Options{})
			if err == nil {
				l.Close()
				t.Fatal("Listen succeeded")
			}
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.wantMsg) || !strings.Contains(err.Error(), path) {
				t.Errorf("error %q; want %v naming the path and saying %q", err, tt.want, tt.wantMsg)
			}
			after, err := os.Lstat(path)
			if err != nil || !os.SameFile(before, after) || before.ModTime() != after.ModTime() {
				t.Errorf("the file at the path was touched: %v", err)
			}
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), ".") {
					t.Errorf("temporary socket %s left behind", e.Name())
				}
			}
		})
	}
	// The regular file's content survives too.
	path := filepath.Join(t.TempDir(), "gg.sock")
	if err := os.WriteFile(path, []byte("precious"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Listen("unix:"+path, Options{}); err == nil {
		t.Fatal("Listen over a regular file succeeded")
	}
	if b, err := os.ReadFile(path); err != nil || string(b) != "precious" {
		t.Errorf("regular file now %q, %v", b, err)
	}
}

// TestCloseLeavesAnotherServersSocket: a server whose socket file was deleted, and taken by a second server, must
// not remove the second server's socket when it stops.
func TestCloseLeavesAnotherServersSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gg.sock")
	first, _ := listenOK(t, "unix://"+path, Options{})
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	listenOK(t, "unix://"+path, Options{})
	first.Close()
	if !dialable(path) {
		t.Error("the first server's Close removed the second server's socket")
	}
}

func TestListenUnixPathTooLong(t *testing.T) {
	path := "/tmp/" + strings.Repeat("x", maxPath)
	_, _, err := Listen("unix://"+path, Options{})
	if err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("Listen on a %d-byte path: %v", len(path), err)
	}
}

func TestListenTCP(t *testing.T) {
	l, cleanup := listenOK(t, "127.0.0.1:0", Options{})
	c, err := net.Dial("tcp", Target(l.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	cleanup()
	if _, err := net.Dial("tcp", l.Addr().String()); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("after cleanup: %v, want connection refused", err)
	}
}

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "stale.sock")
	staleSocket(t, stale)
	live := filepath.Join(dir, "live.sock")
	listenOK(t, "unix://"+live, Options{})
	tests := []struct {
		addr string
		want error // nil: no error
	}{
		{"127.0.0.1:0", nil},
		{"unix://" + filepath.Join(dir, "free.sock"), nil},
		{"unix://" + stale, nil},
		{"unix://" + file, ErrNotSocket},
		{"unix://" + live, ErrInUse},
	}
	for _, tt := range tests {
		if err := Check(tt.addr); !errors.Is(err, tt.want) {
			t.Errorf("Check(%s) = %v, want %v", tt.addr, err, tt.want)
		}
	}
	if err := Check("unix://gg.sock"); err == nil {
		t.Error("Check(unix://gg.sock) accepted an authority")
	}
	if err := Check("unix:///" + strings.Repeat("x", maxPath)); err == nil || !strings.Contains(err.Error(), "at most") {
		t.Errorf("Check of a too long path: %v", err)
	}
	if _, err := os.Lstat(stale); err != nil {
		t.Errorf("Check removed the stale socket: %v", err)
	}
}

func TestListenUnixMissingDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "missing")
	_, _, err := Listen("unix://"+filepath.Join(dir, "gg.sock"), Options{})
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "cannot create a socket in "+dir) || strings.Contains(err.Error(), "/.") {
		t.Errorf("Listen in a missing directory: %v; want ENOENT naming the directory and not the temporary name", err)
	}
}
