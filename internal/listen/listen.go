// Package listen opens the listeners groupgate serves on: a TCP host:port, or a unix domain socket written in
// gRPC's own target syntax (unix:///absolute/path, unix:/absolute/path, unix:relative/path), so that the address
// a server listens on is the address a gRPC client dials.
//
// A socket is made safe to reuse across restarts: its file mode is set before it becomes reachable under its
// name, a socket left behind by a killed process is replaced, and anything else at the path (a regular file, a
// directory, a live server's socket) is refused, never deleted.
package listen

import (
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// DefaultSocketMode lets the owner and the owner's group connect: a sidecar and its partner share a group (or a
// volume's fsGroup), and nobody else on the machine can reach the socket.
const DefaultSocketMode fs.FileMode = 0o660

var (
	// ErrNotSocket: something other than a socket (a regular file, a directory, a symlink) is at the path.
	ErrNotSocket = errors.New("exists and is not a socket")
	// ErrInUse: a live server accepts connections on the socket at the path.
	ErrInUse = errors.New("another server is listening on this socket")
)

// Address is a parsed listen address.
type Address struct {
	Network string // "tcp" or "unix"
	Addr    string // host:port, or the socket's path (relative to the working directory unless absolute)
}

// Parse reads a listen address: host:port, or a unix socket as gRPC-Go's unix resolver reads a target. Forms that
// gRPC-Go cannot dial are refused here too, so that a server never listens where its clients cannot reach it:
// unix://name (gRPC reads "name" as an authority, which unix targets must not have) and abstract sockets.
func Parse(s string) (Address, error) {
	switch {
	case strings.HasPrefix(s, "unix-abstract:"):
		return Address{}, errors.New("abstract unix sockets are not supported: use a socket path, unix:///path/to.sock")
	case strings.HasPrefix(s, "unix:"):
		u, err := url.Parse(s)
		if err != nil {
			return Address{}, err
		}
		if u.Host != "" {
			return Address{}, fmt.Errorf("%q is read as a host, not a path: write unix:%s for a path relative to the working directory, or unix:///absolute/path",
				u.Host, strings.TrimPrefix(s, "unix://"))
		}
		if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
			return Address{}, errors.New("a socket path with '?' or '#' must percent-encode them (unix:///path%3F)")
		}
		path := u.Path // as gRPC-Go does: the path of unix:///p and unix:/p, else the opaque part of unix:p
		if path == "" {
			path = u.Opaque
		}
		if path == "" {
			return Address{}, errors.New("no socket path (want unix:///path/to.sock)")
		}
		return Address{Network: "unix", Addr: path}, nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return Address{}, err
	}
	return Address{Network: "tcp", Addr: s}, nil
}

// Local reports whether only this machine can reach the address: a unix socket (further limited by its file
// mode), localhost or a loopback IP.
func (a Address) Local() bool {
	if a.Network == "unix" {
		return true
	}
	host, _, err := net.SplitHostPort(a.Addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Target is the gRPC dial target of a listener's address: host:port, or a unix: target for a socket.
func Target(a net.Addr) string {
	if a.Network() != "unix" {
		return a.String()
	}
	p := a.String()
	if filepath.IsAbs(p) {
		return (&url.URL{Scheme: "unix", Path: p}).String() // unix:///p, escaping what url.Parse would unescape
	}
	return "unix:" + p
}

// ParseMode reads a socket file mode in octal ("0660", "660", "0o600"). Connecting to a socket needs write
// permission, so a mode without the owner's write bit (which would shut out the owner too) is refused.
func ParseMode(s string) (fs.FileMode, error) {
	n, err := strconv.ParseUint(strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O"), 8, 32)
	if err != nil || n > 0o777 {
		return 0, fmt.Errorf("%q: want an octal file mode such as 0660", s)
	}
	if n&0o200 == 0 {
		return 0, fmt.Errorf("%q: the owner could not connect (connecting to a socket needs write permission): want e.g. 0600 or 0660", s)
	}
	return fs.FileMode(n), nil
}

// Options configure Listen.
type Options struct {
	// SocketMode is the permission bits of a unix socket file (0: DefaultSocketMode). Connecting needs write
	// permission on the socket.
	SocketMode fs.FileMode
}

// Check reports early what Listen would refuse at addr: an unparsable address, or a unix socket path that is
// too long, holds something other than a stale socket, or has a live server on it. A server calls it before
// loading its tenants, so that a second copy started by mistake fails at once rather than after the load.
func Check(addr string) error {
	a, err := Parse(addr)
	if err != nil || a.Network != "unix" {
		return err
	}
	if len(a.Addr) > maxPath {
		return tooLong(a.Addr)
	}
	return checkReplaceable(a.Addr)
}

func tooLong(path string) error {
	return fmt.Errorf("socket path %s is %d bytes long: unix sockets allow at most %d", path, len(path), maxPath)
}

// Listen listens on addr (see Parse). Closing a unix socket's listener also removes its file, if the file is
// still the one Listen made: gRPC's GracefulStop and http.Server's Shutdown close their listeners as they stop
// accepting, so new clients are refused at once while calls in flight finish, and a replacement server can
// take the path during the drain. cleanup closes the listener; it may be called after the listener was closed,
// and more than once.
func Listen(addr string, opts Options) (lis net.Listener, cleanup func(), err error) {
	a, err := Parse(addr)
	if err != nil {
		return nil, nil, err
	}
	if a.Network == "unix" {
		mode := opts.SocketMode
		if mode == 0 {
			mode = DefaultSocketMode
		}
		return listenUnix(a.Addr, mode)
	}
	l, err := net.Listen("tcp", a.Addr)
	if err != nil {
		return nil, nil, err
	}
	return l, func() { _ = l.Close() }, nil
}

// maxPath is the longest socket path the kernel takes (sun_path less its terminating NUL: 107 bytes on Linux).
var maxPath = len(syscall.RawSockaddrUnix{}.Path) - 1

// listenUnix binds the socket under a hidden temporary name in the target's directory, sets its mode, and only
// then renames it to path. Binding at path and changing the mode afterwards would leave a moment in which the
// umask decides who may connect (Docker closes that gap by changing the process-wide umask instead, which races
// with every other file the process creates). The rename also replaces a stale socket atomically: clients never
// see the name missing.
func listenUnix(path string, mode fs.FileMode) (net.Listener, func(), error) {
	if len(path) > maxPath {
		return nil, nil, tooLong(path)
	}
	tmp := filepath.Join(filepath.Dir(path), "."+randomName())
	if len(tmp) > maxPath {
		return nil, nil, fmt.Errorf("socket path %s: its directory name is too long to create the socket beside it (at most %d bytes with a 9-byte name)", path, maxPath)
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		var errno syscall.Errno
		if errors.As(err, &errno) { // the temporary name in the message would only confuse
			return nil, nil, fmt.Errorf("socket %s: cannot create a socket in %s: %w", path, filepath.Dir(path), errno)
		}
		return nil, nil, fmt.Errorf("socket %s: %w", path, err)
	}
	l.SetUnlinkOnClose(false) // Close removes the file under its final name, and only if it is still ours
	fail := func(err error) (net.Listener, func(), error) {
		_ = l.Close()
		_ = os.Remove(tmp)
		return nil, nil, err
	}
	if err := os.Chmod(tmp, mode); err != nil {
		return fail(fmt.Errorf("socket %s: %w", path, err))
	}
	// Checked right before the rename, which would replace whatever is at path.
	if err := checkReplaceable(path); err != nil {
		return fail(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fail(fmt.Errorf("socket %s: %w", path, err))
	}
	created, err := os.Lstat(path)
	if err != nil {
		return fail(fmt.Errorf("socket %s: %w", path, err))
	}
	ul := &unixListener{UnixListener: l, addr: &net.UnixAddr{Name: path, Net: "unix"}, created: created}
	return ul, func() { _ = ul.Close() }, nil
}

// checkReplaceable returns nil when path is free or holds a stale socket (nobody accepts on it: its server was
// killed), ErrNotSocket when it holds anything else, ErrInUse when a server answers on it.
func checkReplaceable(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("socket path %s %w (it is %s): refusing to replace it", path, ErrNotSocket, describe(fi.Mode()))
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	switch {
	case err == nil:
		conn.Close()
		return fmt.Errorf("socket path %s: %w", path, ErrInUse)
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return nil // stale: a socket file with no listener behind it, or gone since the Lstat
	default:
		// Timeouts (a live server with a full backlog) and permission errors (another user's socket) are not
		// proof that the socket is stale.
		return fmt.Errorf("socket path %s: cannot tell whether a server is listening on it: %w", path, err)
	}
}

func describe(m fs.FileMode) string {
	switch m.Type() {
	case 0:
		return "a regular file"
	case fs.ModeDir:
		return "a directory"
	case fs.ModeSymlink:
		return "a symbolic link"
	case fs.ModeNamedPipe:
		return "a named pipe"
	}
	return "of type " + m.Type().String()
}

// randomName is 8 characters: the temporary socket's name stays short, since the whole path must fit in maxPath.
func randomName() string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return strings.ToLower(base32.StdEncoding.EncodeToString(b))
}

// unixListener reports the socket's final path as its address, not the temporary name it was bound under, and
// removes the socket file when closed.
type unixListener struct {
	*net.UnixListener
	addr    *net.UnixAddr
	created fs.FileInfo // the socket file as Listen made it
	once    sync.Once
}

func (l *unixListener) Addr() net.Addr { return l.addr }

func (l *unixListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() {
		// Someone may have removed the file and started another server on the path since: that server's file
		// is not ours to remove.
		if now, err := os.Lstat(l.addr.Name); err == nil && os.SameFile(now, l.created) {
			_ = os.Remove(l.addr.Name)
		}
	})
	return err
}
