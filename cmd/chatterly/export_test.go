package main

// Run exposes run to the black-box tests.
var Run = run
