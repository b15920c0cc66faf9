package main_test

// The README's configuration table and configs/chatterly.env.example are
// rendered from the configuration table in config.go. TestConfigDocs fails
// when either differs from what the table renders, and rewrites both when
// CHATTERLY_UPDATE_DOCS=1 (go tool task docs:config).

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	main "github.com/chatterly/chatterly/cmd/chatterly"
)

const (
	readmeBegin   = "<!-- config:begin -->\n"
	readmeEnd     = "<!-- config:end -->"
	regenerateCmd = "CHATTERLY_UPDATE_DOCS=1 go test -run TestConfigDocs ./cmd/chatterly"
)

func TestConfigDocs(t *testing.T) {
	vars := main.ConfigVars()
	update := os.Getenv("CHATTERLY_UPDATE_DOCS") == "1"

	readme := readDoc(t, "README.md")
	before, rest, ok := strings.Cut(readme, readmeBegin)
	require.True(t, ok, "README.md: no %q line", strings.TrimSpace(readmeBegin))
	table, after, ok := strings.Cut(rest, readmeEnd)
	require.True(t, ok, "README.md: no %q after %q", readmeEnd, strings.TrimSpace(readmeBegin))
	checkGenerated(t, update, "README.md", strings.Count(before, "\n")+1,
		table, readmeTable(vars), func(s string) string { return before + readmeBegin + s + readmeEnd + after })

	const envExamplePath = "configs/chatterly.env.example"
	checkGenerated(t, update, envExamplePath, 0,
		readDoc(t, envExamplePath), envExample(vars), func(s string) string { return s })
}

// readDoc reads a file of the repository, name relative to its root.
func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", filepath.FromSlash(name)))
	require.NoError(t, err)
	return string(b)
}

// checkGenerated compares got, the generated part of the repository's file
// name (starting after its line offset), with want; when updating, it
// writes whole(want) to the file instead.
func checkGenerated(t *testing.T, update bool, name string, offset int, got, want string, whole func(string) string) {
	t.Helper()
	if update {
		if got != want {
			require.NoError(t, os.WriteFile(filepath.Join("..", "..", filepath.FromSlash(name)), []byte(whole(want)), 0o600))
			t.Logf("rewrote %s", name)
		}
		return
	}
	if d := lineDiff(got, want, offset); d != "" {
		t.Errorf("%s is not what the configuration table in cmd/chatterly/config.go renders: "+
			"regenerate it with `go tool task docs:config` (%s).\n"+
			"Lines of %s to remove (-) and to add (+):\n%s", name, regenerateCmd, name, d)
	}
}

func readmeTable(vars []main.ConfigVar) string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Meaning |\n|---|---|---|\n")
	for _, v := range vars {
		name := "`" + v.Name + "`"
		if v.Alias != "" {
			name += " (alias `" + v.Alias + "`)"
		}
		def := "—"
		switch {
		case v.DefaultDoc != "":
			def = v.DefaultDoc
		case v.Default != "":
			def = "`" + v.Default + "`"
		}
		fmt.Fprintf(&b, "| %s | %s | %s |\n", name, def, strings.ReplaceAll(v.Doc, "|", `\|`))
	}
	return b.String()
}

const envHeader = `# Chatterly configuration. Every variable is optional in development:
# with none set, ` + "`go run ./cmd/chatterly`" + ` serves on :3001 in the in-memory mode.
# Copy to .env and ` + "`set -a; . ./.env; set +a`" + ` (or let compose read it).
#
# Generated, like the README's configuration table, from the table in
# cmd/chatterly/config.go: edit that, then run ` + "`go tool task docs:config`" + `
# (` + regenerateCmd + `).
`

func envExample(vars []main.ConfigVar) string {
	var b strings.Builder
	b.WriteString(envHeader)
	for _, v := range vars {
		b.WriteString("\n")
		doc := v.Doc + "."
		if v.Alias != "" {
			doc += " `" + v.Alias + "` is read when `" + v.Name + "` is unset."
		}
		for _, line := range wrap(plainText(doc), 78) {
			b.WriteString(strings.TrimRight("# "+line, " ") + "\n")
		}
		value := v.Example
		if value == "" {
			value = v.Default
		}
		if v.Commented {
			b.WriteString("# ")
		}
		b.WriteString(v.Name + "=" + value + "\n")
	}
	return b.String()
}

var markdownLink = regexp.MustCompile(`\[([^\]]+)\]\(#[^)]+\)`)

// plainText turns the README's links to its own sections into words.
func plainText(doc string) string {
	return markdownLink.ReplaceAllString(doc, "the README's $1 section")
}

// wrap breaks text into lines of at most width bytes where it can, between words.
func wrap(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) > width:
			lines = append(lines, line)
			line = w
		default:
			line += " " + w
		}
	}
	return append(lines, line)
}

// lineDiff lists the lines of got to remove (-) and those of want to add
// (+) to turn got into want, numbered as lines of got after offset; "" when
// they are the same.
func lineDiff(got, want string, offset int) string {
	a, b := strings.Split(got, "\n"), strings.Split(want, "\n")
	// common[i][j] is the length of the longest common subsequence of a[i:] and b[j:].
	common := make([][]int, len(a)+1)
	for i := range common {
		common[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				common[i][j] = common[i+1][j+1] + 1
			} else {
				common[i][j] = max(common[i+1][j], common[i][j+1])
			}
		}
	}
	var out strings.Builder
	for i, j := 0, 0; i < len(a) || j < len(b); {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || common[i+1][j] >= common[i][j+1]):
			fmt.Fprintf(&out, "%5d - %s\n", offset+i+1, a[i])
			i++
		default:
			fmt.Fprintf(&out, "%5d + %s\n", offset+i+1, b[j])
			j++
		}
	}
	return out.String()
}

func TestConfigDocsLineDiff(t *testing.T) {
	cases := []struct {
		name, got, want string
		diff            string
	}{
		{name: "same", got: "a\nb\n", want: "a\nb\n", diff: ""},
		{name: "a line changed", got: "a\nb\nc\n", want: "a\nB\nc\n", diff: "    2 - b\n    3 + B\n"},
		{name: "a line added", got: "a\nc\n", want: "a\nb\nc\n", diff: "    2 + b\n"},
		{name: "a line removed", got: "a\nb\nc\n", want: "a\nc\n", diff: "    2 - b\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.diff, lineDiff(tc.got, tc.want, 0))
		})
	}
	assert.Equal(t, "   12 - b\n", lineDiff("a\nb\n", "a\n", 10), "numbered as lines of the whole file")
}

// Every variable is documented once, in a form both documents can show.
func TestConfigVarsDocumented(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range main.ConfigVars() {
		assert.False(t, seen[v.Name], "%s is in the table twice", v.Name)
		seen[v.Name] = true
		assert.NotEmpty(t, v.Doc, "%s has no doc", v.Name)
		assert.NotContains(t, v.Doc, "\n", "%s: a table row is one line", v.Name)
		assert.False(t, v.Default != "" && v.DefaultDoc != "", "%s: a default is a value or a description, not both", v.Name)
	}
}
