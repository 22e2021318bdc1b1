package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// killPoll is how often faed -k checks whether the instance has exited.
const killPoll = 20 * time.Millisecond

// killInstance is faed -k: it stops the faed whose pid the lock file holds,
// gracefully: SIGTERM makes that faed leave the cluster (its znode is gone
// before anything else), stop accepting and drain its calls (at most its
// rpc.shutdown_timeout). It waits at most wait for the exit, seen as the
// lock file's flock becoming free (it dies with the process, zombie or not).
// It returns the exit status: 0 when the instance stopped, 1 when no faed
// holds the lock file, the signal could not be sent, or the instance is still
// running after wait; each case with a message on stderr.
func killInstance(lockFile string, wait time.Duration, stdout, stderr io.Writer) int {
	pid, fh, err := lockedPID(lockFile)
	if err != nil {
		fmt.Fprintf(stderr, "faed -k: %v\n", err)
		return 1
	}
	defer fh.Close()
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		fmt.Fprintf(stderr, "faed -k: pid %d (from %s): SIGTERM: %v\n", pid, lockFile, err)
		return 1
	}
	start := time.Now()
	for time.Since(start) < wait {
		if syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			fmt.Fprintf(stdout, "faed -k: pid %d stopped in %s\n", pid, time.Since(start).Round(time.Millisecond))
			return 0
		}
		time.Sleep(killPoll)
	}
	fmt.Fprintf(stderr, "faed -k: pid %d still running %s after SIGTERM (draining longer than that, or stuck)\n", pid, wait)
	return 1
}

// lockedPID opens lockFile and returns the pid it names and the open file,
// when a faed holds its lock; else an error saying no faed runs.
func lockedPID(lockFile string) (int, *os.File, error) {
	if lockFile == "" {
		return 0, nil, errors.New("-lockfile is empty: no lock file names the faed to stop")
	}
	fh, err := os.Open(lockFile)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil, fmt.Errorf("no faed runs: lock file %s does not exist", lockFile)
	}
	if err != nil {
		return 0, nil, fmt.Errorf("-lockfile: %w", err)
	}
	text, err := io.ReadAll(fh)
	if err == nil {
		err = syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	}
	if err == nil {
		syscall.Flock(int(fh.Fd()), syscall.LOCK_UN)
		fh.Close()
		return 0, nil, fmt.Errorf("no faed runs: lock file %s is not locked (left by pid %s)", lockFile, strings.TrimSpace(string(text)))
	}
	if !errors.Is(err, syscall.EWOULDBLOCK) {
		fh.Close()
		return 0, nil, fmt.Errorf("-lockfile %s: %w", lockFile, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(text)))
	if err != nil || pid < 1 {
		fh.Close()
		return 0, nil, fmt.Errorf("-lockfile %s is locked but holds no pid: %q", lockFile, text)
	}
	return pid, fh, nil
}
