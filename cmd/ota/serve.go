package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/otakit/otakit/fleet/blob"
	fleethttp "github.com/otakit/otakit/fleet/http"
	"github.com/otakit/otakit/fleet/sqlite"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func init() { commands = append(commands, newServeCmd) }

func newServeCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the fleet server: releases, devices, deployments, dashboard",
		Long: `Run the fleet server with an embedded SQLite database and a local artifact
directory under --data. Every flag can also come from the environment
(OTA_ADDR, OTA_DATA, OTA_ADMIN_TOKEN, …: OTA_ + the flag name in upper case
with dashes as underscores) or from a JSON config file (--config) whose keys
are the flag names. Flags win over the environment, which wins over the file.`,
		Args: cobra.NoArgs,
	}
	f := cmd.Flags()
	f.String("config", "", "JSON config file with flag names as keys")
	f.String("addr", "127.0.0.1:8080", "listen address (host:port; port 0 picks a free one)")
	f.String("data", "ota-data", "data directory: fleet.db, blobs/, admin-token")
	f.String("admin-token", "", "admin API token (default: read or create DATA/admin-token)")
	f.String("tls-cert", "", "TLS certificate (PEM)")
	f.String("tls-key", "", "TLS private key (PEM)")
	f.String("client-ca", "", "PEM CA of device client certificates (mTLS); a presented certificate's CN must be the device id")
	f.Bool("require-client-cert", false, "with --client-ca: refuse device calls without a client certificate")
	f.Bool("dev-tls", false, "serve TLS with a self-signed certificate made in DATA/dev-tls/")
	f.Int("poll", fleethttp.DefaultPollSeconds, "check-in interval suggested to devices, seconds")
	f.Int64("max-upload", fleethttp.DefaultMaxUpload, "largest release upload, bytes")
	f.Bool("mender", true, "also serve the Mender device API (mender-client 3.x)")
	f.Bool("mender-auto-accept", false, "accept new Mender devices at their first auth request")
	f.String("log-level", "info", "debug, info, warn or error")
	f.String("log-format", "text", "text or json")
	f.String("pprof-addr", "", "serve Go's net/http/pprof profiles on this loopback address (off by default)")
	f.Duration("shutdown-timeout", 30*time.Second, "how long to wait for requests on shutdown")
	addDDIFlags(f)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := applyEnvAndConfig(f); err != nil {
			return err
		}
		return runServe(cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
	}
	return cmd
}

// applyEnvAndConfig fills flags not given on the command line from OTA_*
// environment variables, then from the config file.
func applyEnvAndConfig(f *pflag.FlagSet) error {
	envName := func(name string) string { return "OTA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_")) }
	if !f.Changed("config") {
		if v, ok := os.LookupEnv(envName("config")); ok {
			f.Set("config", v)
		}
	}
	conf := map[string]any{}
	if path, _ := f.GetString("config"); path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("config: %w", err)
		}
		if err := json.Unmarshal(b, &conf); err != nil {
			return fmt.Errorf("config %s: %w", path, err)
		}
		for k := range conf {
			if f.Lookup(k) == nil || k == "config" {
				return fmt.Errorf("config %s: unknown key %q", path, k)
			}
		}
	}
	var err error
	f.VisitAll(func(fl *pflag.Flag) {
		if fl.Changed || err != nil || fl.Name == "config" {
			return
		}
		if v, ok := os.LookupEnv(envName(fl.Name)); ok {
			if e := f.Set(fl.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", envName(fl.Name), e)
			}
			return
		}
		if v, ok := conf[fl.Name]; ok {
			s := fmt.Sprint(v)
			if n, isNum := v.(float64); isNum {
				s = fmt.Sprintf("%.0f", n)
			}
			if e := f.Set(fl.Name, s); e != nil {
				err = fmt.Errorf("config key %s: %w", fl.Name, e)
			}
		}
	})
	return err
}

func runServe(stdout, stderr io.Writer, f *pflag.FlagSet) error {
	get := func(n string) string { v, _ := f.GetString(n); return v }
	data := get("data")
	var level slog.Level
	if err := level.UnmarshalText([]byte(get("log-level"))); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: level}
	var logger *slog.Logger
	switch get("log-format") {
	case "text":
		logger = slog.New(slog.NewTextHandler(stderr, opts))
	case "json":
		logger = slog.New(slog.NewJSONHandler(stderr, opts))
	default:
		return fmt.Errorf("--log-format must be text or json")
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return err
	}
	token := get("admin-token")
	if token == "" {
		var err error
		if token, err = adminTokenFile(filepath.Join(data, "admin-token")); err != nil {
			return err
		}
	}
	db, err := sqlite.Open(filepath.Join(data, "fleet.db"))
	if err != nil {
		return err
	}
	defer db.Close()
	blobs, err := blob.Open(filepath.Join(data, "blobs"))
	if err != nil {
		return err
	}
	// Blobs of uploads cut between storing an artifact and committing the
	// release are never served; reclaim their space.
	if n, err := blobs.Sweep(func(sum string) (bool, error) { return db.BlobReferenced(context.Background(), sum) }); err != nil {
		return err
	} else if n > 0 {
		logger.Info("removed unreferenced blobs", "count", n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	poll, _ := f.GetInt("poll")
	maxUp, _ := f.GetInt64("max-upload")
	srv := &fleethttp.Server{Store: db, Blobs: blobs, AdminToken: token, Logger: logger, Registry: reg,
		PollSeconds: poll, MaxUpload: maxUp}
	if srv.DDI, err = ddiConfig(f); err != nil {
		return err
	}
	if srv.Mender, err = menderOptions(f, db, data); err != nil {
		return err
	}

	certFile, keyFile := get("tls-cert"), get("tls-key")
	devTLS, _ := f.GetBool("dev-tls")
	if devTLS {
		if certFile != "" || keyFile != "" {
			return fmt.Errorf("--dev-tls and --tls-cert/--tls-key exclude each other")
		}
		if certFile, keyFile, err = devCertificate(filepath.Join(data, "dev-tls")); err != nil {
			return err
		}
	}
	if (certFile == "") != (keyFile == "") {
		return fmt.Errorf("give both --tls-cert and --tls-key")
	}
	srv.RequireClientCert, _ = f.GetBool("require-client-cert")
	if (get("client-ca") != "" || srv.RequireClientCert) && certFile == "" {
		return fmt.Errorf("--client-ca and --require-client-cert need TLS (--tls-cert/--tls-key or --dev-tls)")
	}
	if srv.RequireClientCert && get("client-ca") == "" {
		return fmt.Errorf("--require-client-cert needs --client-ca")
	}
	ln, err := net.Listen("tcp", get("addr"))
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)}
	scheme := "http"
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return fmt.Errorf("TLS: %w", err)
		}
		hs.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if ca := get("client-ca"); ca != "" {
			pemBytes, err := os.ReadFile(ca)
			if err != nil {
				return fmt.Errorf("--client-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pemBytes) {
				return fmt.Errorf("--client-ca %s: no PEM certificate", ca)
			}
			// Admin and dashboard clients have no certificate, so it is
			// verified when given; devices may be required to give one.
			hs.TLSConfig.ClientCAs, hs.TLSConfig.ClientAuth = pool, tls.VerifyClientCertIfGiven
		}
		ln = tls.NewListener(ln, hs.TLSConfig)
		scheme = "https"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				if err := db.StartDue(ctx, now); err != nil && ctx.Err() == nil {
					logger.Error("starting scheduled deployments", "err", err)
				}
			}
		}
	}()
	if pa := get("pprof-addr"); pa != "" {
		pm := http.NewServeMux()
		pm.HandleFunc("/debug/pprof/", pprof.Index)
		pm.HandleFunc("/debug/pprof/profile", pprof.Profile)
		pm.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		pm.HandleFunc("/debug/pprof/trace", pprof.Trace)
		pln, err := net.Listen("tcp", pa)
		if err != nil {
			return fmt.Errorf("--pprof-addr: %w", err)
		}
		go http.Serve(pln, pm)
		logger.Info("pprof", "addr", pln.Addr().String())
	}
	url := fmt.Sprintf("%s://%s", scheme, ln.Addr())
	fmt.Fprintf(stdout, "ota serve: listening on %s (dashboard %s/ui/, admin token in %s)\n", url, url,
		tokenSource(get("admin-token"), data))
	if devTLS {
		fmt.Fprintf(stdout, "ota serve: self-signed certificate %s\n", certFile)
	}
	logger.Info("serving", "url", url, "data", data)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Info("shutting down")
	timeout, _ := f.GetDuration("shutdown-timeout")
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func tokenSource(flagToken, data string) string {
	if flagToken != "" {
		return "--admin-token/OTA_ADMIN_TOKEN"
	}
	return filepath.Join(data, "admin-token")
}

// adminTokenFile reads the admin token at path, creating a random one
// (mode 0600) when the file does not exist.
func adminTokenFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", err
	}
	buf := make([]byte, 24)
	rand.Read(buf)
	t := fmt.Sprintf("ota_%x", buf)
	if err := os.WriteFile(path, []byte(t+"\n"), 0o600); err != nil {
		return "", err
	}
	return t, nil
}

// devCertificate returns a self-signed ECDSA P-256 certificate for
// localhost, 127.0.0.1 and ::1 in dir, making it on first use.
func devCertificate(dir string) (certFile, keyFile string, err error) {
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err == nil {
		return certFile, keyFile, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ota serve development certificate"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return "", "", err
	}
	return certFile, keyFile, nil
}
