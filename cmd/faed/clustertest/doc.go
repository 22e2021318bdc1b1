// Package clustertest holds the tests of faed as a cluster: several real faed
// processes on 127.0.0.1 and a ZooKeeper of the tests' own. It has no code of
// its own; its tests are kept apart from cmd/faed's so that their time shows
// on its own line of make test.
package clustertest
