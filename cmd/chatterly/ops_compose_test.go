package main_test

// The container files an operator runs (compose.yaml, .env.example, the
// Dockerfile, configs/haproxy.cfg), checked without Docker: compose.yaml is
// loaded and validated by compose-go, the library `docker compose config`
// uses, with the variables of .env.example, for the default stack and for the
// "scaled" profile. TestComposeHAProxyConfig also runs `haproxy -c` where
// haproxy is installed (apt-get install haproxy).

import (
	"context"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/mod/modfile"

	main "github.com/chatterly/chatterly/cmd/chatterly"
)

// repoRoot is the module root, where compose.yaml and the Dockerfile live.
const repoRoot = "../.."

func readRepoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(name)))
	require.NoError(t, err)
	return string(b)
}

// loadCompose loads compose.yaml as `docker compose --env-file envFile
// --profile ... config` would, without the process environment.
func loadCompose(t *testing.T, envFile string, profiles ...string) (*types.Project, error) {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	opts, err := cli.NewProjectOptions([]string{filepath.Join(root, "compose.yaml")},
		cli.WithWorkingDirectory(root),
		cli.WithEnvFiles(envFile),
		cli.WithDotEnv,
		cli.WithProfiles(profiles),
		cli.WithoutUnnecessaryResources,
	)
	require.NoError(t, err)
	return opts.LoadProject(context.Background())
}

func exampleEnvFile(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join(repoRoot, ".env.example"))
	require.NoError(t, err)
	return p
}

// exampleEnv is .env.example's variables.
func exampleEnv(t *testing.T) map[string]string {
	t.Helper()
	env := map[string]string{}
	for _, line := range strings.Split(readRepoFile(t, ".env.example"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		require.True(t, ok, ".env.example: %q is not NAME=value", line)
		env[k] = v
	}
	return env
}

func serviceNames(p *types.Project) []string {
	names := p.ServiceNames()
	slices.Sort(names)
	return names
}

func serviceEnv(t *testing.T, s types.ServiceConfig, name string) string {
	t.Helper()
	v, ok := s.Environment[name]
	require.True(t, ok && v != nil, "%s: %s is not set", s.Name, name)
	return *v
}

// assertApp checks what every Chatterly service needs: the image built here,
// the container healthcheck, and healthy dependencies before it starts.
func assertApp(t *testing.T, s types.ServiceConfig, deps ...string) {
	t.Helper()
	require.NotNil(t, s.Build, "%s: not built from the Dockerfile", s.Name)
	require.NotNil(t, s.HealthCheck, "%s: no healthcheck", s.Name)
	assert.Equal(t, types.HealthCheckTest{"CMD", "/chatterly", "healthcheck"}, s.HealthCheck.Test, s.Name)
	var got []string
	for name, d := range s.DependsOn {
		got = append(got, name)
		assert.Equal(t, types.ServiceConditionHealthy, d.Condition, "%s depends on %s", s.Name, name)
	}
	assert.ElementsMatch(t, deps, got, "%s: depends_on", s.Name)
	assert.Equal(t, "3001", serviceEnv(t, s, "PORT"), s.Name)
	assert.Equal(t, "redis://redis:6379/0", serviceEnv(t, s, "REDIS_URL"), s.Name)
	_, err := main.LoadConfig(func(name string) string {
		if v := s.Environment[name]; v != nil {
			return *v
		}
		return ""
	})
	assert.NoError(t, err, "%s: the server accepts its environment", s.Name)
}

// assertDatabaseURL checks that a URL reaches host:5432 as chatterly with
// .env.example's password.
func assertDatabaseURL(t *testing.T, raw, host string) {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	assert.Equal(t, "postgres", u.Scheme)
	assert.Equal(t, host+":5432", u.Host, raw)
	assert.Equal(t, "/chatterly", u.Path, raw)
	assert.Equal(t, "chatterly", u.User.Username(), raw)
	pw, _ := u.User.Password()
	assert.Equal(t, exampleEnv(t)["POSTGRES_PASSWORD"], pw, "the password comes from .env")
}

func TestComposeDefaultStack(t *testing.T) {
	p, err := loadCompose(t, exampleEnvFile(t))
	require.NoError(t, err, "compose.yaml with .env.example (docker compose config)")

	require.Equal(t, []string{"app", "postgres", "redis"}, serviceNames(p),
		"docker compose up starts the database, Redis and one app; the scaled profile's services stay off")
	require.NotContains(t, p.Networks, "lb", "the default stack creates no balancer network")

	app := p.Services["app"]
	assertApp(t, app, "postgres", "redis")
	assertDatabaseURL(t, serviceEnv(t, app, "DATABASE_URL"), "postgres")
	require.Len(t, app.Ports, 1)
	assert.Equal(t, "3001", app.Ports[0].Published)
	assert.Equal(t, uint32(3001), app.Ports[0].Target)

	for _, name := range []string{"postgres", "redis"} {
		s := p.Services[name]
		assert.NotNil(t, s.HealthCheck, "%s: no healthcheck: the app waits for it to be healthy", name)
		assert.Empty(t, s.Ports, "%s is not published on the host", name)
	}
	assert.Equal(t, exampleEnv(t)["POSTGRES_PASSWORD"], serviceEnv(t, p.Services["postgres"], "POSTGRES_PASSWORD"))
}

func TestComposeScaledProfile(t *testing.T) {
	p, err := loadCompose(t, exampleEnvFile(t), "scaled")
	require.NoError(t, err, "compose.yaml with .env.example (docker compose --profile scaled config)")

	require.Equal(t, []string{"app", "app-1", "app-2", "haproxy", "pgbouncer", "postgres", "redis"}, serviceNames(p))

	require.Contains(t, p.Networks, "lb")
	require.Len(t, p.Networks["lb"].Ipam.Config, 1)
	subnet := p.Networks["lb"].Ipam.Config[0].Subnet
	_, err = netip.ParsePrefix(subnet)
	require.NoError(t, err, "the balancer network's subnet")

	for _, name := range []string{"app-1", "app-2"} {
		s := p.Services[name]
		assertApp(t, s, "postgres", "redis", "pgbouncer")
		assertDatabaseURL(t, serviceEnv(t, s, "DATABASE_URL"), "pgbouncer")
		assertDatabaseURL(t, serviceEnv(t, s, "DATABASE_DIRECT_URL"), "postgres")
		assert.Equal(t, "cache_describe", serviceEnv(t, s, "DATABASE_QUERY_MODE"),
			"%s: PgBouncer in transaction mode needs a query mode without named prepared statements", name)
		assert.Equal(t, subnet, serviceEnv(t, s, "TRUSTED_PROXIES"), "%s trusts X-Forwarded-For from the balancer's network", name)
		assert.Contains(t, s.Networks, "lb", name)
		assert.Contains(t, s.Networks, "default", "%s reaches PgBouncer, PostgreSQL and Redis", name)
		assert.Empty(t, s.Ports, "%s is reached through the balancer only", name)
	}

	pgb := p.Services["pgbouncer"]
	assert.Equal(t, "transaction", serviceEnv(t, pgb, "POOL_MODE"))
	assert.Equal(t, "postgres", serviceEnv(t, pgb, "DB_HOST"))
	assert.Equal(t, exampleEnv(t)["POSTGRES_PASSWORD"], serviceEnv(t, pgb, "DB_PASSWORD"))
	require.NotNil(t, pgb.HealthCheck)
	assert.Equal(t, types.ServiceConditionHealthy, pgb.DependsOn["postgres"].Condition)

	lb := p.Services["haproxy"]
	assert.Equal(t, []string{"lb"}, slices.Collect(maps.Keys(lb.Networks)),
		"the balancer is alone with the instances on the network they trust")
	require.Len(t, lb.Ports, 1)
	assert.Equal(t, "3002", lb.Ports[0].Published, "the balancer is on another host port than the default app")
	assert.Contains(t, readRepoFile(t, "configs/haproxy.cfg"), "bind :"+strconv.FormatUint(uint64(lb.Ports[0].Target), 10))
	for _, name := range []string{"app-1", "app-2"} {
		assert.Equal(t, types.ServiceConditionHealthy, lb.DependsOn[name].Condition, "haproxy waits for %s", name)
	}
	var mounted bool
	for _, v := range lb.Volumes {
		if v.Target == "/usr/local/etc/haproxy/haproxy.cfg" {
			mounted = true
			rel, err := filepath.Rel(mustAbs(t, repoRoot), v.Source)
			require.NoError(t, err)
			assert.Equal(t, filepath.FromSlash("configs/haproxy.cfg"), rel)
		}
	}
	assert.True(t, mounted, "haproxy mounts configs/haproxy.cfg")
}

func mustAbs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	require.NoError(t, err)
	return a
}

// An operator who forgot .env gets a message naming the variable, not a
// database that refuses the app.
func TestComposeRequiresPostgresPassword(t *testing.T) {
	var kept []string
	for _, line := range strings.Split(readRepoFile(t, ".env.example"), "\n") {
		if !strings.HasPrefix(line, "POSTGRES_PASSWORD=") {
			kept = append(kept, line)
		}
	}
	envFile := filepath.Join(t.TempDir(), "env")
	require.NoError(t, os.WriteFile(envFile, []byte(strings.Join(kept, "\n")), 0o600))
	for _, profiles := range [][]string{nil, {"scaled"}} {
		_, err := loadCompose(t, envFile, profiles...)
		require.Error(t, err, "profiles %v", profiles)
		assert.Contains(t, err.Error(), "set POSTGRES_PASSWORD in .env")
	}
}

// Passwords come from .env: compose.yaml names none, and every variable it
// reads is in .env.example, which .gitignore and .dockerignore keep .env apart from.
func TestComposeNoLiteralPasswords(t *testing.T) {
	raw := readRepoFile(t, "compose.yaml")
	secretKey := regexp.MustCompile(`(?im)^\s*-?\s*([A-Z_]*(?:PASSWORD|SECRET)[A-Z_]*)\s*[:=]\s*(.*)$`)
	for _, m := range secretKey.FindAllStringSubmatch(raw, -1) {
		assert.True(t, strings.HasPrefix(strings.Trim(m[2], `"'`), "${"), "compose.yaml: %s has a literal value %q: read it from .env", m[1], m[2])
	}
	userinfo := regexp.MustCompile(`://[^:/@\s]+:(\$\{[^}]*\}|[^@\s]*)@`)
	urls := userinfo.FindAllStringSubmatch(raw, -1)
	require.NotEmpty(t, urls, "compose.yaml's database URLs")
	for _, m := range urls {
		assert.True(t, strings.HasPrefix(m[1], "${"), "compose.yaml: a URL has the literal password %q: read it from .env", m[1])
	}

	example := exampleEnv(t)
	for _, m := range regexp.MustCompile(`\$\{([A-Z0-9_]+)`).FindAllStringSubmatch(raw, -1) {
		assert.Contains(t, example, m[1], ".env.example documents every variable compose.yaml reads")
	}
	for _, name := range []string{".gitignore", ".dockerignore"} {
		assert.Contains(t, strings.Fields(readRepoFile(t, name)), ".env", "%s keeps .env out", name)
	}
}

// The image builds with the toolchain go.mod names: bumping one without the
// other fails here (and in the Dockerfile's own check).
func TestComposeDockerfileToolchain(t *testing.T) {
	mf, err := modfile.Parse("go.mod", []byte(readRepoFile(t, "go.mod")), nil)
	require.NoError(t, err)
	want := mf.Go.Version
	if mf.Toolchain != nil {
		want = strings.TrimPrefix(mf.Toolchain.Name, "go")
	}

	from := regexp.MustCompile(`(?m)^FROM\s+(?:--platform=\S+\s+)?(\S+)`)
	var golang int
	for _, m := range from.FindAllStringSubmatch(readRepoFile(t, "Dockerfile"), -1) {
		ref, digest, _ := strings.Cut(m[1], "@")
		if digest != "" {
			assert.Regexp(t, `^sha256:[0-9a-f]{64}$`, digest, m[1])
		}
		i := strings.LastIndex(ref, ":")
		require.True(t, i > strings.LastIndex(ref, "/"), "FROM %s: pin a version tag", m[1])
		name, tag := ref[:i], ref[i+1:]
		assert.NotEqual(t, "latest", tag, "FROM %s", m[1])
		if name == "golang" || strings.HasSuffix(name, "/golang") {
			golang++
			assert.True(t, tag == want || strings.HasPrefix(tag, want+"-"),
				"FROM %s: the Go image must be go.mod's toolchain go%s (official images build with their own Go: GOTOOLCHAIN=local)", m[1], want)
		}
	}
	assert.Equal(t, 1, golang, "the Dockerfile builds in one golang image")

	p, err := loadCompose(t, exampleEnvFile(t), "scaled")
	require.NoError(t, err)
	for _, s := range p.Services {
		if s.Image == "" {
			continue
		}
		ref, _, _ := strings.Cut(s.Image, "@")
		_, tag, ok := strings.Cut(ref[strings.LastIndex(ref, "/")+1:], ":")
		assert.True(t, ok && regexp.MustCompile(`\d+\.\d+`).MatchString(tag), "%s: image %s: pin a version such as 17.11", s.Name, s.Image)
	}
}

// configs/haproxy.cfg balances the scaled profile's two instances, checks
// them on /readyz and keeps WebSockets open; `haproxy -c` validates it where
// haproxy is installed.
func TestComposeHAProxyConfig(t *testing.T) {
	cfg := readRepoFile(t, "configs/haproxy.cfg")
	for _, want := range []string{
		"server app-1 app-1:3001", "server app-2 app-2:3001",
		"balance roundrobin", "uri /readyz", "timeout tunnel 1h", "option forwardfor",
	} {
		assert.Contains(t, cfg, want)
	}

	if _, err := exec.LookPath("haproxy"); err != nil {
		t.Skip("haproxy is not installed (apt-get install haproxy): configs/haproxy.cfg's syntax is not checked")
	}
	cmd := exec.CommandContext(context.Background(), "haproxy", "-c", "-f", "configs/haproxy.cfg")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "haproxy -c -f configs/haproxy.cfg:\n%s", out)
}
