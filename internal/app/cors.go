package app

import (
	"net/http"
	"strings"
)

// cors lets browser games on other origins call the client HTTP API
// (Connect, gRPC-Web). WebSockets need no CORS: browsers send Origin but do
// not enforce it, and sockets authenticate with a token, never a cookie.
type cors struct {
	any     bool
	allowed map[string]bool
	next    http.Handler
}

const (
	corsAllowHeaders  = "Content-Type, Connect-Protocol-Version, Connect-Timeout-Ms, Connect-Accept-Encoding, Connect-Content-Encoding, Grpc-Timeout, X-Grpc-Web, X-User-Agent, Authorization"
	corsExposeHeaders = "Taisen-Error-Code, Grpc-Status, Grpc-Message, Grpc-Status-Details-Bin, Connect-Content-Encoding"
)

// newCORS wraps next; origins is a comma-separated list of allowed origins
// ("https://game.example.com"), "*" for any, or empty for none.
func newCORS(origins string, next http.Handler) http.Handler {
	c := &cors{allowed: map[string]bool{}, next: next}
	for _, o := range strings.Split(origins, ",") {
		o = strings.ToLower(strings.TrimRight(strings.TrimSpace(o), "/"))
		switch o {
		case "":
		case "*":
			c.any = true
		default:
			c.allowed[o] = true
		}
	}
	if !c.any && len(c.allowed) == 0 {
		return next
	}
	return c
}

func (c *cors) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Origin")
	origin := r.Header.Get("Origin")
	if origin == "" || !(c.any || c.allowed[strings.ToLower(origin)]) {
		c.next.ServeHTTP(w, r)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
		h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
		h.Set("Access-Control-Max-Age", "7200")
		w.WriteHeader(http.StatusNoContent)
		return
	}
	c.next.ServeHTTP(w, r)
}
