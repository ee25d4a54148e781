//go:build !linux

package gateway

import "errors"

const (
	defaultEngine  = "goroutine"
	epollSupported = false
)

func newEpollEngine(*Gateway) (engine, error) {
	return nil, errors.New("the epoll engine needs Linux")
}

func (c *conn) writeNow([][]byte) (int, bool, error) { return 0, false, nil }
