package consumers

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.yaml.in/yaml/v3"
)

const secret = "s3cr3t-Pa55word"

// saslBroker starts kfake with SASL on, one superuser per mechanism, and
// TLS when tc is set.
func saslBroker(t *testing.T, tc *tls.Config) string {
	t.Helper()
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.EnableSASL(),
		kfake.Superuser(SASLScramSHA256, "alice", secret),
		kfake.Superuser(SASLScramSHA512, "bob", secret),
		kfake.Superuser(SASLPlain, "carol", secret),
		kfake.AllowAutoTopicCreation(),
	}
	if tc != nil {
		opts = append(opts, kfake.TLS(tc))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c.ListenAddrs()[0]
}

// login connects through cfg and returns the broker's answer.
func login(cfg KafkaConfig) error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	cl, err := kgo.NewClient(cfg.Opts(quiet, kgo.RequestRetries(0))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	return cl.Ping(ctx)
}

// roundTrip produces one record and reads it back through cfg.
func roundTrip(cfg KafkaConfig, topic string, wait time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cl, err := kgo.NewClient(cfg.Opts(quiet, kgo.AllowAutoTopicCreation(), kgo.ConsumeTopics(topic), kgo.RequestRetries(0), kgo.RetryTimeout(2*time.Second))...)
	if err != nil {
		return err
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr(); err != nil {
		return err
	}
	fs := cl.PollFetches(ctx)
	if err := fs.Err0(); err != nil {
		return err
	}
	if fs.NumRecords() != 1 {
		return fmt.Errorf("read %d records, want 1", fs.NumRecords())
	}
	return nil
}

func TestSASLLoginOnlyWithTheRightPassword(t *testing.T) {
	addr := saslBroker(t, nil)
	for _, tc := range []struct{ mech, user string }{
		{SASLScramSHA256, "alice"}, {SASLScramSHA512, "bob"}, {SASLPlain, "carol"},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			cfg := KafkaConfig{Brokers: []string{addr}}
			cfg.SetDefaults()
			if err := cfg.Security.FromEnv(env(map[string]string{
				EnvKafkaSASLMechanism: strings.ToLower(tc.mech), EnvKafkaSASLUser: tc.user, EnvKafkaSASLPassword: secret,
			})); err != nil {
				t.Fatal(err)
			}
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := login(cfg); err != nil {
				t.Fatalf("login with the right password: %v", err)
			}
			if err := roundTrip(cfg, tc.mech, 10*time.Second); err != nil {
				t.Fatalf("login with the right password: %v", err)
			}
			cfg.Security.SASL.Password = "wrong"
			// kfake drops the connection of a failed login (EOF), a real
			// broker answers SASL_AUTHENTICATION_FAILED first: either way
			// the client is out.
			if err := login(cfg); err == nil {
				t.Fatal("login with a wrong password worked")
			}
			cfg.Security = Security{}
			if err := login(cfg); err == nil {
				t.Fatal("a client without SASL got in")
			}
		})
	}
}

func TestSASLOverTLSWithCAFileAndPasswordFile(t *testing.T) {
	dir := t.TempDir()
	serverTLS, caFile := selfSigned(t, dir)
	addr := saslBroker(t, serverTLS)
	pwFile := filepath.Join(dir, "password")
	if err := os.WriteFile(pwFile, []byte(secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := KafkaConfig{Brokers: []string{addr}}
	cfg.SetDefaults()
	if err := cfg.Security.FromEnv(env(map[string]string{
		EnvKafkaSASLMechanism: SASLScramSHA256, EnvKafkaSASLUser: "alice", EnvKafkaSASLPasswordFile: pwFile,
		EnvKafkaTLSCAFile: caFile,
	})); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := roundTrip(cfg, "t", 10*time.Second); err != nil {
		t.Fatalf("SASL_SSL with the CA file: %v", err)
	}
	// Without the CA the broker's certificate is unknown: refused.
	noCA := cfg
	noCA.Security.TLS = TLSConfig{Enabled: true}
	if err := login(noCA); err == nil {
		t.Fatal("TLS without the CA accepted an unknown certificate")
	}
	// Plaintext against a TLS listener fails too.
	plain := cfg
	plain.Security.TLS = TLSConfig{}
	if err := login(plain); err == nil {
		t.Fatal("plaintext client talked to a TLS listener")
	}
}

func TestSecurityValidateNamesTheProblem(t *testing.T) {
	for _, tc := range []struct {
		s    Security
		want string
	}{
		{Security{SASL: SASLConfig{Mechanism: "GSSAPI", User: "u", Password: "p"}}, "unknown SASL mechanism"},
		{Security{SASL: SASLConfig{Mechanism: SASLPlain, User: "u"}}, "needs a user and a password"},
		{Security{SASL: SASLConfig{User: "u"}}, "without a mechanism"},
		{Security{SASL: SASLConfig{Mechanism: SASLPlain, User: "u", PasswordFile: "/nonexistent/pw"}}, "cannot read SASL password file"},
		{Security{TLS: TLSConfig{CertFile: "c.pem"}}, "go together"},
		{Security{TLS: TLSConfig{CAFile: "/nonexistent/ca.pem"}}, "cannot read Kafka TLS CA file"},
	} {
		err := tc.s.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.s, err, tc.want)
		}
	}
	if err := (&Security{}).FromEnv(env(map[string]string{EnvKafkaTLS: "maybe"})); err == nil {
		t.Error("DRIFTLINE_KAFKA_TLS=maybe accepted")
	}
}

// TestPasswordNeverPrinted formats and logs a config with a password every
// way a process might, and marshals it as YAML.
func TestPasswordNeverPrinted(t *testing.T) {
	cfg := KafkaConfig{Brokers: []string{"k:9093"}, Security: Security{
		SASL: SASLConfig{Mechanism: SASLScramSHA512, User: "driftline", Password: secret},
		TLS:  TLSConfig{CAFile: "/etc/kafka/ca.pem"},
	}}
	cfg.SetDefaults()
	var out bytes.Buffer
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		fmt.Fprintf(&out, verb+"\n", cfg)
		fmt.Fprintf(&out, verb+"\n", &cfg)
		fmt.Fprintf(&out, verb+"\n", cfg.Security)
		fmt.Fprintf(&out, verb+"\n", cfg.Security.SASL)
	}
	for _, h := range []slog.Handler{slog.NewTextHandler(&out, nil), slog.NewJSONHandler(&out, nil)} {
		l := slog.New(h)
		l.Info("config", "kafka", cfg, "security", cfg.Security, "ptr", &cfg)
	}
	y, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	out.Write(y)
	if strings.Contains(out.String(), secret) {
		t.Fatalf("password printed:\n%s", out.String())
	}
	for _, want := range []string{"[REDACTED]", "sasl_password_set=true", "SCRAM-SHA-512", "driftline"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("formatted config lacks %q:\n%s", want, out.String())
		}
	}
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// selfSigned makes a self-signed certificate for 127.0.0.1
// and returns the server config and the CA file that trusts it.
func selfSigned(t *testing.T, dir string) (*tls.Config, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}, ca
}

// A CA file that disappears after Validate must not turn TLS off: against a
// plaintext listener that accepts SASL PLAIN, a client that fell back to
// cleartext would log in (and send the password in the clear); one that fails
// closed cannot connect at all.
func TestUnreadableCAFileFailsClosed(t *testing.T) {
	dir := t.TempDir()
	_, caFile := selfSigned(t, dir)
	addr := saslBroker(t, nil) // plaintext
	cfg := KafkaConfig{Brokers: []string{addr}}
	cfg.SetDefaults()
	if err := cfg.Security.FromEnv(env(map[string]string{
		EnvKafkaSASLMechanism: SASLPlain, EnvKafkaSASLUser: "carol", EnvKafkaSASLPassword: secret,
	})); err != nil {
		t.Fatal(err)
	}
	if err := login(cfg); err != nil {
		t.Fatalf("the plaintext SASL listener should accept carol: %v", err)
	}
	withTLS := cfg
	withTLS.Security.TLS = TLSConfig{CAFile: caFile}
	if err := withTLS.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(caFile); err != nil {
		t.Fatal(err)
	}
	if err := login(withTLS); err == nil {
		t.Fatal("the CA file is gone and the client logged in over plaintext: TLS was silently switched off")
	}
}
