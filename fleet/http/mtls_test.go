package http_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/otakit/otakit/fleet"
	"github.com/otakit/otakit/fleet/blob"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/fleet/sqlite"
)

type ca struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newCA(t *testing.T) ca {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "device CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return ca{c, key}
}

func (c ca) client(t *testing.T, cn string) tls.Certificate {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.cert, &key.PublicKey, c.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func TestDeviceMutualTLS(t *testing.T) {
	for _, require := range []bool{false, true} {
		dir := t.TempDir()
		db, err := sqlite.Open(filepath.Join(dir, "fleet.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		bs, _ := blob.Open(filepath.Join(dir, "blobs"))
		authority := newCA(t)
		pool := x509.NewCertPool()
		pool.AddCert(authority.cert)
		ts := httptest.NewUnstartedServer((&fleethttp.Server{Store: db, Blobs: bs, AdminToken: adminToken, RequireClientCert: require}).Handler())
		ts.TLS = &tls.Config{ClientCAs: pool, ClientAuth: tls.VerifyClientCertIfGiven}
		ts.StartTLS()
		defer ts.Close()
		ctx := context.Background()
		admin := fleethttp.NewClient(ts.URL, adminToken, ts.Client()) // no client certificate
		p, err := admin.CreateDevice(ctx, fleethttp.NewDevice{ID: "m1"})
		if err != nil {
			t.Fatal(err)
		}
		withCert := func(c *tls.Certificate) *http.Client {
			tr := ts.Client().Transport.(*http.Transport).Clone()
			if c != nil {
				tr.TLSClientConfig.Certificates = []tls.Certificate{*c}
			}
			return &http.Client{Transport: tr}
		}
		own, other, rogue := authority.client(t, "m1"), authority.client(t, "m2"), newCA(t).client(t, "m1")
		cases := []struct {
			name string
			cert *tls.Certificate
			ok   bool
		}{
			{"own certificate", &own, true},
			{"another device's certificate", &other, false},
			{"no certificate", nil, !require},
			{"certificate from another CA", &rogue, false},
		}
		for _, c := range cases {
			_, err := fleethttp.NewDeviceClient(ts.URL, p.Token, withCert(c.cert)).CheckIn(ctx, fleet.CheckIn{CurrentVersion: "1.0.0"})
			if (err == nil) != c.ok {
				t.Errorf("require=%v %s: %v", require, c.name, err)
			}
			if err != nil && c.cert != &rogue && !errors.Is(err, fleet.ErrForbidden) {
				t.Errorf("require=%v %s: %v, want 403", require, c.name, err)
			}
		}
	}
}
