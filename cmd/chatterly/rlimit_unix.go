//go:build unix

package main

import "syscall"

// raiseFileLimit lifts the soft open-files limit to the hard one: every
// WebSocket is a descriptor, and distributions default the soft limit to
// 1024. It returns the limit in force.
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
