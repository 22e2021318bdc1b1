//go:build !(linux || darwin || dragonfly || freebsd || netbsd || openbsd)

package engine

// watchSupported is false: WatchClient does nothing on this platform.
const watchSupported = false

func peek(uintptr) peekState { return peekData }
