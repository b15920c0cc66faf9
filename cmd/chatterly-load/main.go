// Command chatterly-load is a load generator for Chatterly. It speaks REST
// and the Action Cable protocol the way the web client does and runs one
// scenario per invocation: idle, fanout, throughput, connect, seed, history, reads
// or soak. See docs/load.md.
package main

import (
	"context"
	"flag"
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
	{"reads", "conversation list (with unread counts) and mark-read latency over REST (after seed)", runReads},
	{"soak", "moderate mixed load for a duration; memory and goroutine drift", runSoak},
}

func usage() {
	stderrf("usage: chatterly-load <scenario> [flags]   (chatterly-load <scenario> -h for flags)\n\nscenarios:\n")
	for _, s := range scenarios {
		stderrf("  %-10s %s\n", s.name, s.help)
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
				stderrf("chatterly-load %s: %v\n", s.name, err)
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
		stderrf("getrlimit: %v\n", err)
		return
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			stderrf("setrlimit NOFILE %d: %v\n", lim.Max, err)
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
	// progress is the interval of the status lines on stderr; 0 prints none.
	progress time.Duration
	// json prints the result as one JSON object instead of the table.
	json bool
}

const defaultURL = "http://127.0.0.1:3001"

// register declares the flags. Those the environment can set have no
// default in the flag set and are read from it after parsing (parse), so
// that -h, which prints defaults, never shows a secret.
func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.url, "url", "", "server base URL (env CHATTERLY_URL, else "+defaultURL+")")
	fs.StringVar(&c.password, "password", "load-password-123", "password of the users the tool registers")
	fs.IntVar(&c.conc, "c", 64, "concurrency of setup work (registrations, conversations, dials)")
	fs.DurationVar(&c.confirmMax, "confirm-timeout", 2*time.Minute, "how long to wait for every subscription to be confirmed")
	fs.StringVar(&c.db, "db", "", "the server's database (env DATABASE_URL): seed and history read it; with -jwt-secret, setup creates users in SQL")
	fs.StringVar(&c.jwtSecret, "jwt-secret", "", "the server's JWT secret (env DEVISE_JWT_SECRET_KEY); with -db, tokens are signed here")
	fs.DurationVar(&c.progress, "progress", 10*time.Second, "interval of the status lines on stderr while the load runs (0: none)")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object on stdout instead of the summary and table")
}

// parse parses args, then fills what they left empty from the environment.
func (c *common) parse(fs *flag.FlagSet, args []string) {
	_ = fs.Parse(args) // ExitOnError: a bad flag has exited already
	for _, f := range []struct {
		v        *string
		env, def string
	}{
		{&c.url, "CHATTERLY_URL", defaultURL},
		{&c.db, "DATABASE_URL", ""},
		{&c.jwtSecret, "DEVISE_JWT_SECRET_KEY", ""},
	} {
		if *f.v == "" {
			*f.v = envOr(f.env, f.def)
		}
	}
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
