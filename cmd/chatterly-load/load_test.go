package main

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestPercentileAndSummary(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	s := summarize(d)
	if s.N != 100 || s.P50 != 50*time.Millisecond || s.P95 != 95*time.Millisecond ||
		s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond || s.Mean != 50500*time.Microsecond {
		t.Fatalf("summary %+v", s)
	}
	if got := percentile([]time.Duration{7}, 99); got != 7 {
		t.Fatalf("one value: %v", got)
	}
	if got := summarize(nil); got.N != 0 || got.Max != 0 {
		t.Fatalf("empty: %+v", got)
	}
	var l Latencies
	for i := 10; i > 0; i-- {
		l.Add(i, time.Duration(i))
	}
	all := l.All()
	if len(all) != 10 || all[0] != 1 || all[9] != 10 {
		t.Fatalf("All not sorted: %v", all)
	}
}

func TestMarkRoundTrip(t *testing.T) {
	t0 := time.Unix(1764422400, 123456789)
	msg, _ := json.Marshal(map[string]any{"type": "new_message", "message": map[string]any{"id": 9, "content": markContent(42, t0)}})
	frame := `{"identifier":"{\"channel\":\"ConversationChannel\",\"conversation_id\":3}","message":` + string(msg) + `}`
	seq, at, ok := parseMark([]byte(frame))
	if !ok || seq != 42 || at != t0.UnixNano() {
		t.Fatalf("parseMark = %d %d %v", seq, at, ok)
	}
	if _, _, ok := parseMark([]byte(`{"type":"ping","message":1}`)); ok {
		t.Fatal("ping parsed as a mark")
	}
}

func TestIdentifiers(t *testing.T) {
	// Byte for byte what JSON.stringify({channel, conversation_id}) gives.
	if got := conversationIdentifier(12); got != `{"channel":"ConversationChannel","conversation_id":12}` {
		t.Fatal(got)
	}
	for _, id := range fourIdentifiers(3) {
		var m map[string]any
		if err := json.Unmarshal([]byte(id), &m); err != nil || m["channel"] == "" {
			t.Fatalf("%s: %v", id, err)
		}
	}
	var cmd struct{ Command, Identifier, Data string }
	if err := json.Unmarshal(commandFrame("message", presenceIdentifier, `{"action":"ping"}`), &cmd); err != nil ||
		cmd.Command != "message" || cmd.Identifier != presenceIdentifier || cmd.Data != `{"action":"ping"}` {
		t.Fatalf("%+v %v", cmd, err)
	}
	if got := cableURL("http://127.0.0.1:3001/", "a.b+c"); got != "ws://127.0.0.1:3001/cable?token=a.b%2Bc" {
		t.Fatal(got)
	}
	re := regexp.MustCompile(`^[a-z0-9_]{3,30}$`)
	for _, u := range []string{username(runID(), 99999), seedUser(4999)} {
		if !re.MatchString(u) {
			t.Fatalf("username %q", u)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	m, err := parseMetrics(strings.NewReader(`# HELP go_goroutines x
# TYPE go_goroutines gauge
go_goroutines 13
go_memstats_heap_inuse_bytes 1.826816e+06
process_resident_memory_bytes 1.5753216e+07
chatterly_cable_connections{instance="a"} 2
chatterly_cable_connections{instance="b"} 3
chatterly_cable_connections_total 99
process_cpu_seconds_total 12.34
`))
	if err != nil || m.Goroutines != 13 || m.HeapInuse != 1826816 || m.RSS != 15753216 || m.CableConns != 5 || m.CPUSeconds != 12.34 {
		t.Fatalf("%+v %v", m, err)
	}
}

func TestSeedSpan(t *testing.T) {
	now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
	from, end := seedSpan(now, 24)
	if !from.Equal(time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC)) || !end.Before(now) {
		t.Fatalf("%v %v", from, end)
	}
	if !seedTime(from, end, 0, 10).Equal(from) || !seedTime(from, end, 9, 10).Before(end) {
		t.Fatal("seedTime out of span")
	}
	if got := partitionName(from); got != "messages_y2024m04" {
		t.Fatal(got)
	}
}
