// Command chatterly-load is a load generator for Chatterly. It speaks REST
// and the Action Cable protocol the way the web client does and runs one
// scenario per invocation: idle, fanout, throughput, connect, seed, history
// or soak. See docs/load.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

type scenario struct {
	name, help string
	run        func(ctx context.Context, args []string) error
}

var scenarios = []scenario{
	{"idle", "N idle connections with the four subscriptions; server memory and goroutines per connection", runIdle},
	{"fanout", "N members of one group; M messages over REST; delivery latency and losses", runFanout},
	{"throughput", "K senders over C conversations of S members for T; accepted and delivered messages/s", runThroughput},
	{"connect", "N clients with distinct JWTs connect and subscribe; time until all confirmed", runConnect},
	{"seed", "bulk-load messages with COPY into DATABASE_URL (for history)", runSeed},
	{"history", "newest-page and deep-cursor history latency over REST (after seed)", runHistory},
	{"soak", "moderate mixed load for a duration; memory and goroutine drift", runSoak},
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: chatterly-load <scenario> [flags]   (chatterly-load <scenario> -h for flags)\n\nscenarios:\n")
	for _, s := range scenarios {
		fmt.Fprintf(os.Stderr, "  %-10s %s\n", s.name, s.help)
	}
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	raiseNoFile()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	for _, s := range scenarios {
		if s.name == os.Args[1] {
			if err := s.run(ctx, os.Args[2:]); err != nil {
				fmt.Fprintf(os.Stderr, "chatterly-load %s: %v\n", s.name, err)
				os.Exit(1)
			}
			return
		}
	}
	usage()
	os.Exit(2)
}

// raiseNoFile raises the soft RLIMIT_NOFILE to the hard limit. (The Go
// runtime already does so for programs importing os since Go 1.19; this makes
// it explicit and reports a failure.)
func raiseNoFile() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		fmt.Fprintf(os.Stderr, "getrlimit: %v\n", err)
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			fmt.Fprintf(os.Stderr, "setrlimit NOFILE %d: %v\n", lim.Max, err)
		}
	}
}

// common holds the flags every scenario has.
type common struct {
	url        string
	password   string
	conc       int
	confirmMax time.Duration
	// db and jwtSecret, when both set, let setup insert users in SQL and
	// sign their tokens itself (see bulkUsers) instead of paying the
	// server a bcrypt per registration.
	db        string
	jwtSecret string
	// noPresence leaves PresenceChannel out (fanout): in one group of N
	// members everyone is everyone's contact, so N clients coming online
	// cost N² presence events, which would swamp what is measured.
	noPresence bool
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", envOr("CHATTERLY_URL", "http://127.0.0.1:3001"), "server base URL (env CHATTERLY_URL)")
	fs.StringVar(&c.password, "password", "load-password-123", "password of the users the tool registers")
	fs.IntVar(&c.conc, "c", 64, "concurrency of setup work (registrations, conversations, dials)")
	fs.DurationVar(&c.confirmMax, "confirm-timeout", 2*time.Minute, "how long to wait for every subscription to be confirmed")
	fs.StringVar(&c.db, "db", os.Getenv("DATABASE_URL"), "the server's database (env DATABASE_URL): seed and history read it; with -jwt-secret, setup creates users in SQL")
	fs.StringVar(&c.jwtSecret, "jwt-secret", os.Getenv("DEVISE_JWT_SECRET_KEY"), "the server's JWT secret (env DEVISE_JWT_SECRET_KEY); with -db, tokens are signed here")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// runID makes usernames unique per run; usernames match ^[a-z0-9_]{3,30}$.
func runID() string {
	return strconv.FormatInt(time.Now().UnixNano()/int64(time.Millisecond)%(36*36*36*36*36*36*36), 36)
}

func username(run string, i int) string { return "ld" + run + "_" + strconv.Itoa(i) }
