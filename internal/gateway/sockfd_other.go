//go:build !linux

package gateway

import (
	"errors"
	"net"
	"syscall"
)

// detachSocket is Linux-only (the epoll engine's sockets).
func detachSocket(net.Conn) (net.Conn, syscall.RawConn, error) {
	return nil, nil, errors.New("gateway: bare socket descriptors need Linux")
}
