package app_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	apiv1 "github.com/taisen-dev/taisen/gen/go/taisen/api/v1"
	realtimev1 "github.com/taisen-dev/taisen/gen/go/taisen/realtime/v1"
	"github.com/taisen-dev/taisen/internal/config"
	"github.com/taisen-dev/taisen/internal/wire"
	"github.com/taisen-dev/taisen/taisentest"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "taisen test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// TestTLSClientListener: with --tls-cert the client listener serves the
// HTTP API and WebSockets over TLS (through net/http: the WebSocket fast
// path is for plain TCP).
func TestTLSClientListener(t *testing.T) {
	cert, key := writeCert(t)
	n := taisentest.StartNode(t, taisentest.Options{Configure: func(c *config.Config) { c.TLSCert, c.TLSKey = cert, key }})
	base := strings.Replace(n.ClientURL, "http://", "https://", 1)
	tlsCfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the test's own self-signed certificate
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "ok\n" {
		t.Errorf("/healthz over TLS: %d %q", resp.StatusCode, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, _, err := ws.Dialer{TLSConfig: tlsCfg}.Dial(ctx, strings.Replace(base, "https://", "wss://", 1)+"/ws?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var r io.Reader = conn
	if br != nil {
		r = io.MultiReader(br, conn)
	}
	hello := &realtimev1.ClientFrame{Cid: 1, Body: &realtimev1.ClientFrame_Hello{Hello: &realtimev1.Hello{Auth: &realtimev1.Hello_Authenticate{
		Authenticate: &apiv1.AuthenticateRequest{Credential: &apiv1.AuthenticateRequest_Device{Device: &apiv1.DeviceCredential{Id: "device-tls-0001"}}, Create: true}}}}}
	b, err := wire.Marshal(wire.JSON, nil, hello)
	if err != nil {
		t.Fatal(err)
	}
	if err := wsutil.WriteClientMessage(conn, ws.OpText, b); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	data, _, err := wsutil.ReadServerData(struct {
		io.Reader
		io.Writer
	}{r, io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	fr, err := wire.DecodeServerFrame(wire.JSON, data)
	if err != nil || fr.GetWelcome() == nil {
		t.Fatalf("over TLS: %v, %v; want a Welcome", fr, err)
	}
}
