package testwait

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestScaleCoversRaceAndCPUs(t *testing.T) {
	if Scale() <= 0 || Deadline(time.Second) != time.Duration(float64(time.Second)*Scale()) {
		t.Fatalf("Scale %v, Deadline(1s) %v", Scale(), Deadline(time.Second))
	}
	if raceEnabled && (Scale() < raceFactor || !strings.Contains(Describe(), "race")) {
		t.Fatalf("under -race: %s", Describe())
	}
}

func TestUntilReturnsOnceTheConditionHolds(t *testing.T) {
	n := 0
	Until(t, time.Second, "the third check", func() (bool, string) {
		n++
		return n == 3, fmt.Sprint(n)
	})
	if n != 3 {
		t.Fatalf("%d checks", n)
	}
}

func TestPollNamesWhatItWaitedForAndSaw(t *testing.T) {
	n := 0
	err := Poll(context.Background(), time.Millisecond, "position 7", func() (bool, string) {
		n++
		return false, fmt.Sprintf("checkpoint %d", n)
	})
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"position 7", fmt.Sprintf("last saw: checkpoint %d", n), "checks", Describe()} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Poll(ctx, time.Hour, "nothing", func() (bool, string) { return false, "x" }); err == nil || !strings.Contains(err.Error(), "ended") {
		t.Errorf("cancelled: %v", err)
	}
}

func TestRecv(t *testing.T) {
	ch := make(chan int, 1)
	ch <- 4
	if v, ok := Recv(t, time.Second, "a number", ch); v != 4 || !ok {
		t.Fatalf("Recv = %d, %v", v, ok)
	}
	close(ch)
	if _, ok := Recv(t, time.Second, "the end", ch); ok {
		t.Fatal("closed channel received as open")
	}
}
