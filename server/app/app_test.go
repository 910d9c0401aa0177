package app

import "testing"

func TestListenAddressGuard(t *testing.T) {
	tests := []struct {
		addr    string
		allowed bool
		ok      bool
	}{
		{"127.0.0.1:50051", false, true},
		{"[::1]:50051", false, true},
		{"localhost:50051", false, true},
		{"0.0.0.0:50051", false, false},
		{"10.1.2.3:50051", false, false},
		{"0.0.0.0:50051", true, true},
		{"nonsense", false, false},
		{"unix:///run/gg.sock", false, true}, // a socket is local: its file mode decides who connects
	}
	for _, tt := range tests {
		err := checkListenAddress("--listen", tt.addr, tt.allowed)
		if (err == nil) != tt.ok {
			t.Errorf("checkListenAddress(%q, allowed=%v) = %v, want ok=%v", tt.addr, tt.allowed, err, tt.ok)
		}
	}
}
