package consumers

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms Security accepts.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Environment variables every Driftline process reads. This is the one list:
// cmd/driftline reads them through Security.FromEnv (and LogLevel), and the
// tests of deploy/ assert that the manifests set no other DRIFTLINE_* name.
// A *_FILE variant reads the value from a file (a mounted Secret), so the
// secret never appears in a process listing or a manifest.
const (
	EnvLogLevel                  = "DRIFTLINE_LOG_LEVEL"
	EnvKafkaBrokers              = "DRIFTLINE_KAFKA_BROKERS"
	EnvKafkaSASLMechanism        = "DRIFTLINE_KAFKA_SASL_MECHANISM"
	EnvKafkaSASLUser             = "DRIFTLINE_KAFKA_SASL_USER"
	EnvKafkaSASLPassword         = "DRIFTLINE_KAFKA_SASL_PASSWORD"
	EnvKafkaSASLPasswordFile     = "DRIFTLINE_KAFKA_SASL_PASSWORD_FILE"
	EnvKafkaTLS                  = "DRIFTLINE_KAFKA_TLS"
	EnvKafkaTLSCAFile            = "DRIFTLINE_KAFKA_TLS_CA_FILE"
	EnvKafkaTLSCertFile          = "DRIFTLINE_KAFKA_TLS_CERT_FILE"
	EnvKafkaTLSKeyFile           = "DRIFTLINE_KAFKA_TLS_KEY_FILE"
	EnvKafkaTLSServerName        = "DRIFTLINE_KAFKA_TLS_SERVER_NAME"
	EnvKafkaTLSInsecureSkipCheck = "DRIFTLINE_KAFKA_TLS_INSECURE_SKIP_VERIFY"
	// EnvClickHouseDSN is the sink's ClickHouse DSN with its credentials
	// (the default of `driftline run --clickhouse`), from a Secret.
	EnvClickHouseDSN = "DRIFTLINE_CLICKHOUSE_DSN"
	// EnvAlertWebhook is the monitor's alert webhook URL, a secret for
	// Slack-style hooks (the default of `driftline run --alert-webhook`).
	EnvAlertWebhook = "DRIFTLINE_ALERT_WEBHOOK"
)

// EnvNames lists every environment variable above, in the order
// operations.md documents them.
func EnvNames() []string {
	return []string{
		EnvLogLevel, EnvKafkaBrokers,
		EnvKafkaSASLMechanism, EnvKafkaSASLUser, EnvKafkaSASLPassword, EnvKafkaSASLPasswordFile,
		EnvKafkaTLS, EnvKafkaTLSCAFile, EnvKafkaTLSCertFile, EnvKafkaTLSKeyFile, EnvKafkaTLSServerName,
		EnvKafkaTLSInsecureSkipCheck, EnvClickHouseDSN, EnvAlertWebhook,
	}
}

// Security is how clients authenticate to and encrypt traffic with a real
// Kafka cluster. The zero value is plaintext without authentication, which
// is what the embedded broker speaks.
//
// The password is a secret: String and LogValue redact it, and it has no
// yaml tag so a config file cannot carry it (use the environment or
// PasswordFile).
type Security struct {
	// SASL authenticates clients; empty Mechanism disables it.
	SASL SASLConfig `yaml:"sasl"`
	// TLS encrypts the connection to every broker.
	TLS TLSConfig `yaml:"tls"`
}

// SASLConfig is SASL authentication.
type SASLConfig struct {
	// Mechanism is PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; empty: no SASL.
	Mechanism string `yaml:"mechanism"`
	// User is the SASL user name.
	User string `yaml:"user"`
	// Password is the secret; never in YAML, never in logs.
	Password string `yaml:"-"`
	// PasswordFile, when set and Password is empty, is read at start
	// (a mounted Kubernetes Secret). Trailing newlines are dropped.
	PasswordFile string `yaml:"password_file"`
}

// TLSConfig is client TLS.
type TLSConfig struct {
	// Enabled turns TLS on; the files below imply it.
	Enabled bool `yaml:"enabled"`
	// CAFile is a PEM bundle of the CAs that sign the brokers' certificates;
	// empty trusts the system pool.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client's certificate and key (PEM) for
	// mutual TLS; both or neither.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked against the brokers'
	// certificates (default: the host of each broker address).
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify accepts any broker certificate. Tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// on reports whether TLS is to be used.
func (t TLSConfig) on() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.InsecureSkipVerify
}

// FromEnv fills unset fields from the DRIFTLINE_KAFKA_* variables that
// getenv (os.Getenv in production) returns. A set field wins over the
// environment.
func (s *Security) FromEnv(getenv func(string) string) error {
	setStr := func(dst *string, name string) {
		if *dst == "" {
			*dst = strings.TrimSpace(getenv(name))
		}
	}
	setStr(&s.SASL.Mechanism, EnvKafkaSASLMechanism)
	setStr(&s.SASL.User, EnvKafkaSASLUser)
	if s.SASL.Password == "" {
		s.SASL.Password = getenv(EnvKafkaSASLPassword) // verbatim: spaces may belong to it
	}
	setStr(&s.SASL.PasswordFile, EnvKafkaSASLPasswordFile)
	setStr(&s.TLS.CAFile, EnvKafkaTLSCAFile)
	setStr(&s.TLS.CertFile, EnvKafkaTLSCertFile)
	setStr(&s.TLS.KeyFile, EnvKafkaTLSKeyFile)
	setStr(&s.TLS.ServerName, EnvKafkaTLSServerName)
	for name, dst := range map[string]*bool{EnvKafkaTLS: &s.TLS.Enabled, EnvKafkaTLSInsecureSkipCheck: &s.TLS.InsecureSkipVerify} {
		v := strings.TrimSpace(getenv(name))
		if v == "" || *dst {
			continue
		}
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("cannot parse %s=%q as a boolean: %w", name, v, err)
		}
		*dst = b
	}
	return nil
}

// Validate reports settings that cannot work, and loads the password file
// and TLS material once so a bad path fails at start, not at first connect.
func (s *Security) Validate() error {
	if s.SASL.Mechanism != "" {
		s.SASL.Mechanism = strings.ToUpper(s.SASL.Mechanism)
		switch s.SASL.Mechanism {
		case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		default:
			return fmt.Errorf("kafka: unknown SASL mechanism %q (known: %s, %s, %s)", s.SASL.Mechanism, SASLPlain, SASLScramSHA256, SASLScramSHA512)
		}
		if s.SASL.Password == "" && s.SASL.PasswordFile != "" {
			b, err := os.ReadFile(s.SASL.PasswordFile)
			if err != nil {
				return fmt.Errorf("cannot read SASL password file: %w", err)
			}
			s.SASL.Password = strings.TrimRight(string(b), "\r\n")
		}
		if s.SASL.User == "" || s.SASL.Password == "" {
			return fmt.Errorf("kafka: SASL %s needs a user and a password (%s, %s or %s)", s.SASL.Mechanism, EnvKafkaSASLUser, EnvKafkaSASLPassword, EnvKafkaSASLPasswordFile)
		}
	} else if s.SASL.User != "" {
		return fmt.Errorf("kafka: SASL user %q given without a mechanism (%s)", s.SASL.User, EnvKafkaSASLMechanism)
	}
	if (s.TLS.CertFile == "") != (s.TLS.KeyFile == "") {
		return fmt.Errorf("kafka: TLS client certificate and key go together (cert %q, key %q)", s.TLS.CertFile, s.TLS.KeyFile)
	}
	if _, err := s.TLS.config(); err != nil {
		return err
	}
	return nil
}

// config builds the client tls.Config, nil when TLS is off.
func (t TLSConfig) config() (*tls.Config, error) {
	if !t.on() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in, documented as tests only
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("cannot read Kafka TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("cannot use Kafka TLS CA file %s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("cannot load Kafka TLS client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// mechanism builds the SASL mechanism, nil when SASL is off.
func (s SASLConfig) mechanism() sasl.Mechanism {
	switch s.Mechanism {
	case SASLPlain:
		return plain.Auth{User: s.User, Pass: s.Password}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()
	}
	return nil
}

// opts returns the client options for these settings. TLS files are read
// again for each client, so a rotated certificate is picked up when a client
// is recreated; Validate has checked them once already. When they cannot be
// read now, the error is logged and the client fails closed: it still dials
// TLS, with a certificate pool that trusts nothing, so every handshake fails
// and no byte (a SASL password least of all) is ever sent in cleartext.
func (s Security) opts(log *slog.Logger) []kgo.Opt {
	var opts []kgo.Opt
	if m := s.SASL.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	c, err := s.TLS.config()
	if err != nil {
		log.Error("cannot configure Kafka TLS: this client trusts no broker until the TLS files are readable", "err", err)
		c = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: x509.NewCertPool()}
	}
	if c != nil {
		opts = append(opts, kgo.DialTLSConfig(c))
	}
	return opts
}

// String shows the settings with the password redacted.
func (s Security) String() string {
	pw := ""
	if s.SASL.Password != "" {
		pw = "[REDACTED]"
	}
	return fmt.Sprintf("sasl{mechanism=%s user=%s password=%s password_file=%s} tls{enabled=%t ca=%s cert=%s key=%s server_name=%s insecure_skip_verify=%t}",
		s.SASL.Mechanism, s.SASL.User, pw, s.SASL.PasswordFile,
		s.TLS.on(), s.TLS.CAFile, s.TLS.CertFile, s.TLS.KeyFile, s.TLS.ServerName, s.TLS.InsecureSkipVerify)
}

// GoString keeps %#v from printing the password.
func (s Security) GoString() string { return "consumers.Security{" + s.String() + "}" }

// LogValue logs the settings with the password redacted.
func (s Security) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("sasl_mechanism", s.SASL.Mechanism),
		slog.String("sasl_user", s.SASL.User),
		slog.Bool("sasl_password_set", s.SASL.Password != ""),
		slog.Bool("tls", s.TLS.on()),
		slog.String("tls_ca_file", s.TLS.CAFile),
		slog.Bool("tls_client_cert", s.TLS.CertFile != ""),
		slog.Bool("tls_insecure_skip_verify", s.TLS.InsecureSkipVerify),
	)
}

// String keeps a password out of %v of a SASLConfig printed on its own.
func (s SASLConfig) String() string {
	return Security{SASL: s}.String()
}

// GoString keeps a password out of %#v of a SASLConfig.
func (s SASLConfig) GoString() string { return s.String() }
