package demo

import "testing"

func TestDemoTenantLoads(t *testing.T) {
	d, err := Directory()
	if err != nil {
		t.Fatalf("demo tenant refused: %v", err)
	}
	if d.TenantID() != TenantID {
		t.Fatalf("tenant id = %q, want %q", d.TenantID(), TenantID)
	}
	c := d.Counts()
	if c.Users < 10 || c.Groups < 10 || c.Labels < 3 || c.ServicePrincipals < 2 {
		t.Fatalf("demo tenant too small to exercise the rules: %+v", c)
	}
}
