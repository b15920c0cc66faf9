//go:build !unix

package main

// raiseFileLimit has nothing to raise outside Unix.
func raiseFileLimit() (uint64, error) { return 0, nil }
