//go:build unix

package main

import "syscall"

// raiseFileLimit lifts the soft open-files limit to the hard one: every
// WebSocket is a descriptor, and distributions default the soft limit to
// 1024. Go's runtime does the same at start since Go 1.19; doing it here
// keeps the server's need explicit. It returns the limit in force, which
// serve logs, so an operator sees when the hard limit is the cap.
func raiseFileLimit() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return l.Cur, nil
}
