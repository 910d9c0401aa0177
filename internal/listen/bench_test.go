package listen

import (
	"io"
	"net"
	"path/filepath"
	"testing"
)

// BenchmarkEchoRoundTrip sends 64 bytes and reads them back over loopback TCP and over a unix socket: what the
// kernel's path costs per round trip, to set against a whole gRPC call (bench's BenchmarkNoOpRoundTrip).
//
//	go test ./internal/listen -run '^$' -bench EchoRoundTrip -count 5
func BenchmarkEchoRoundTrip(b *testing.B) {
	for _, tc := range []struct{ name, addr string }{
		{"tcp", "127.0.0.1:0"},
		{"unix", "unix://" + filepath.Join(b.TempDir(), "echo.sock")},
	} {
		b.Run(tc.name, func(b *testing.B) {
			l, cleanup, err := Listen(tc.addr, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer cleanup()
			go func() {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				defer conn.Close()
				_, _ = io.Copy(conn, conn)
			}()
			conn, err := net.Dial(l.Addr().Network(), l.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			buf := make([]byte, 64)
			for b.Loop() {
				if _, err := conn.Write(buf); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(conn, buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
