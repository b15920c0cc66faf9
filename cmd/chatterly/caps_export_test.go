package main

// The HTTP server's limits, exposed to the black-box tests.
type HTTPLimits = httpLimits

var (
	NewHTTPServer     = newHTTPServer
	DefaultHTTPLimits = defaultHTTPLimits
)
