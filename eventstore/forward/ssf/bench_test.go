package ssf_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-auth/vigil/domain"
	"github.com/vigil-auth/vigil/domain/expect"
	"github.com/vigil-auth/vigil/eventstore/forward/ssf"
	"github.com/vigil-auth/vigil/eventstore/testwait"
)

// latencyReceiver acknowledges every SET at once (202) and notes when each event's SET
// arrived, by its txn.
type latencyReceiver struct {
	mu  sync.Mutex
	got map[string]time.Time
	all chan struct{}
	n   int
}

func (r *latencyReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	at := time.Now()
	parts := strings.Split(string(body), ".")
	var c struct {
		Txn string `json:"txn"`
	}
	if len(parts) == 3 {
		if p, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			_ = json.Unmarshal(p, &c)
		}
	}
	w.WriteHeader(http.StatusAccepted)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, dup := r.got[c.Txn]; !dup {
		r.got[c.Txn] = at
		if len(r.got) == r.n {
			close(r.all)
		}
	}
}

// BenchmarkPushLatency: events appended at 500/s (and 50/s, for a host too busy to sustain
// 500) (one append each, started on a tick)
// to a log with one push stream to a local receiver; the time from the start of each append
// to the receiver holding its SET (it answers 202 at once), and from the append's
// acknowledgement to it (the transmitter's own share). Each iteration sends 5 s of events.
// Run with -benchtime=1x.
func BenchmarkPushLatency(b *testing.B) {
	for _, rate := range []int{500, 50} {
		b.Run(fmt.Sprintf("rate=%d", rate), func(b *testing.B) { pushLatency(b, rate, rate*5) })
	}
}

func pushLatency(b *testing.B, rate, n int) {
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b, nil)
		rcv := &latencyReceiver{got: map[string]time.Time{}, all: make(chan struct{}), n: n}
		srv := httptest.NewServer(rcv)
		e.createStream(ssf.MethodPush, srv.URL)
		md := accountMD("a1")
		started := make(map[string][2]time.Time, n) // append called, append acknowledged
		var mu sync.Mutex
		var wg sync.WaitGroup
		tick := time.NewTicker(time.Second / time.Duration(rate))
		b.StartTimer()
		for i := range n {
			<-tick.C
			wg.Add(1)
			go func() {
				defer wg.Done()
				ev := domain.Event(domain.PasswordChanged{At: time.Now()})
				if i%2 == 1 {
					ev = domain.SessionSignedOut{Reason: "logout", At: time.Now()}
				}
				d, err := domain.EncodeEvent(ev, md)
				if err != nil {
					b.Error(err)
					return
				}
				stream := domain.AccountStream("a1")
				if i%2 == 1 {
					stream = domain.SessionStream(domain.NewID())
				}
				t0 := time.Now()
				res, err := e.log.Append(context.Background(), stream, expect.Any, []domain.EventData{d})
				t1 := time.Now()
				if err != nil {
					b.Error(err)
					return
				}
				evs, err := e.log.ReadAll(context.Background(), res.LastPosition-1, 1)
				if err != nil || len(evs) != 1 {
					b.Error("read back", err)
					return
				}
				mu.Lock()
				started[evs[0].ID] = [2]time.Time{t0, t1}
				mu.Unlock()
			}()
		}
		tick.Stop()
		wg.Wait()
		testwait.Recv(b, 60*time.Second, "every SET at the receiver", rcv.all)
		b.StopTimer()
		var total, after []time.Duration
		rcv.mu.Lock()
		for id, t := range started {
			total = append(total, rcv.got[id].Sub(t[0]))
			after = append(after, rcv.got[id].Sub(t[1]))
		}
		rcv.mu.Unlock()
		slices.Sort(total)
		slices.Sort(after)
		q := func(lat []time.Duration, p float64) float64 {
			return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
		}
		// total: from calling Append (its fsync included) to the receiver's 202; ssf: from
		// the append's acknowledgement, what the transmitter adds.
		b.ReportMetric(q(total, 0.50), "total-p50-ms")
		b.ReportMetric(q(total, 0.99), "total-p99-ms")
		b.ReportMetric(q(after, 0.50), "ssf-p50-ms")
		b.ReportMetric(q(after, 0.99), "ssf-p99-ms")
		srv.Close()
		e.stop()
		b.StartTimer()
	}
}

// BenchmarkPollThroughput: a poll stream holding 5,000 SETs (made before the timer starts)
// is drained by polls of maxEvents 500, each acknowledging the previous page, as a receiver
// does; SETs/s is reported. Run with -benchtime=1x.
func BenchmarkPollThroughput(b *testing.B) {
	const n = 5000
	for b.Loop() {
		b.StopTimer()
		e := newEnv(b, nil)
		id := e.createStream(ssf.MethodPoll, "")
		md := accountMD("a1")
		var last uint64
		for i := 0; i < n; i += 500 {
			var batch []domain.EventData
			for range 500 {
				d, err := domain.EncodeEvent(domain.PasswordChanged{At: time.Now()}, md)
				if err != nil {
					b.Fatal(err)
				}
				batch = append(batch, d)
			}
			res, err := e.log.Append(context.Background(), domain.AccountStream("a1"), expect.Any, batch)
			if err != nil {
				b.Fatal(err)
			}
			last = res.LastPosition
		}
		ctx, cancel := testwait.Context(120 * time.Second)
		if err := e.tr.WaitStream(ctx, id, last); err != nil {
			b.Fatal(err)
		}
		cancel()
		b.StartTimer()
		start := time.Now()
		got := 0
		var ack []string
		for {
			res, err := e.tr.Poll(context.Background(), id, 500, true, ack)
			if err != nil {
				b.Fatal(err)
			}
			if len(res.Sets) == 0 {
				break
			}
			got += len(res.Sets)
			ack = ack[:0]
			for jti := range res.Sets {
				ack = append(ack, jti)
			}
		}
		el := time.Since(start)
		b.StopTimer()
		if got != n {
			b.Fatalf("polled %d SETs, want %d", got, n)
		}
		b.ReportMetric(float64(n)/el.Seconds(), "SETs/s")
		e.stop()
		b.StartTimer()
	}
}
