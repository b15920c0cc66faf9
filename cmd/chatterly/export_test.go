// Exports of package main for its black-box tests (package main_test).
package main

// Run exposes run to the black-box tests.
var Run = run

// The HTTP server's limits, exposed to the black-box tests.
type HTTPLimits = httpLimits

var (
	NewHTTPServer     = newHTTPServer
	DefaultHTTPLimits = defaultHTTPLimits
)

// ConfigVar is what TestConfigDocs renders of one configVar.
type ConfigVar struct {
	Name, Alias, Default, DefaultDoc, Example string
	Commented                                 bool
	Doc                                       string
}

// ConfigVars exposes the configuration table to the black-box tests.
func ConfigVars() []ConfigVar {
	out := make([]ConfigVar, 0, len(configVars))
	for _, v := range configVars {
		out = append(out, ConfigVar{
			Name: v.name, Alias: v.alias, Default: v.def, DefaultDoc: v.defDoc,
			Example: v.example, Commented: v.commented, Doc: v.doc,
		})
	}
	return out
}
