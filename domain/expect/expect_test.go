package expect

import "testing"

func TestVersionString(t *testing.T) {
	for v, want := range map[Version]string{Any: "any", NoStream: "no stream", Exact(7): "version 7", Version(-3): "invalid(-3)"} {
		if got := v.String(); got != want {
			t.Errorf("Version(%d).String() = %q, want %q", int64(v), got, want)
		}
	}
	if Exact(0) != NoStream {
		t.Errorf("Exact(0) = %v, want NoStream", Exact(0))
	}
}
