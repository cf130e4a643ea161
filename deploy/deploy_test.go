package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"go.yaml.in/yaml/v3"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/internal/app"
	"github.com/driftline/driftline/internal/checkfor"
)

// The values the manifests are held to.
const (
	metricsPort = "9464"
	partitions  = 8
)

// secretEnv are the variables that carry secrets: manifests must take them
// from a Secret, never a literal value or a ConfigMap.
var secretEnv = []string{consumers.EnvKafkaSASLPassword, consumers.EnvClickHouseDSN, consumers.EnvAlertWebhook}

// --- helpers ---------------------------------------------------------------

type obj = map[string]any

func docs(t *testing.T, path string) []obj {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []obj
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d obj
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			out = append(out, d)
		}
	}
	return out
}

// at walks nested maps and lists: at(d, "spec", "template", "spec").
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(obj)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

func list(v any) []any { l, _ := v.([]any); return l }

// commandFlags returns the flags a `driftline <cmd>` subcommand defines,
// read from its source (fs.String("name", ...) and friends), so a manifest
// can use only flags the binary has.
func commandFlags(t *testing.T, file string) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "cmd", "driftline", file), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	flags := map[string]bool{}
	ast.Inspect(f, func(n ast.Node) bool {
		call, ok := n.(*ast.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok {
			return true
		}
		if id, ok := sel.X.(*ast.Ident); !ok || id.Name != "fs" {
			return true
		}
		if lit, ok := call.Args[0].(*ast.BasicLit); ok && lit.Kind == token.STRING {
			name, _ := strconv.Unquote(lit.Value)
			flags[name] = true
		}
		return true
	})
	if len(flags) < 3 {
		t.Fatalf("found only %d flags in %s; has the flag parsing changed?", len(flags), file)
	}
	return flags
}

// parseArgs splits ["run", "--roles=x", "--provision=true"] into the
// subcommand and its flags; every flag must be --name=value or --name.
func parseArgs(t *testing.T, where string, args []any) (string, map[string]string) {
	t.Helper()
	if len(args) == 0 {
		t.Fatalf("%s: no args", where)
	}
	flags := map[string]string{}
	for _, a := range args[1:] {
		s := str(a)
		if !strings.HasPrefix(s, "--") {
			t.Errorf("%s: argument %q is not a --flag=value", where, s)
			continue
		}
		name, val, _ := strings.Cut(strings.TrimPrefix(s, "--"), "=")
		flags[name] = val
	}
	return str(args[0]), flags
}

func checkFlags(t *testing.T, where string, flags map[string]string, known map[string]bool) {
	t.Helper()
	for f := range flags {
		if !known[f] {
			t.Errorf("%s uses --%s, which the command does not define", where, f)
		}
	}
}

func checkEnvName(t *testing.T, where, name string) {
	t.Helper()
	if !slices.Contains(consumers.EnvNames(), name) {
		t.Errorf("%s sets %s, which no Driftline code reads (consumers.EnvNames)", where, name)
	}
}

// TestEveryEnvNameIsRead holds the other half of checkEnvName: each name of
// consumers.EnvNames is read either by Security.FromEnv (asked for through
// the getenv it is given) or by cmd/driftline through os.Getenv of the
// constant, so a manifest that sets it changes something.
func TestEveryEnvNameIsRead(t *testing.T) {
	read := map[string]bool{}
	var s consumers.Security
	if err := s.FromEnv(func(k string) string { read[k] = true; return "" }); err != nil {
		t.Fatal(err)
	}
	// Constant names and values, from their declarations.
	values := map[string]string{}
	f, err := parser.ParseFile(token.NewFileSet(), filepath.Join("..", "consumers", "security.go"), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ast.Inspect(f, func(n ast.Node) bool {
		if vs, ok := n.(*ast.ValueSpec); ok && len(vs.Values) == len(vs.Names) {
			for i, id := range vs.Names {
				if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					values[id.Name], _ = strconv.Unquote(lit.Value)
				}
			}
		}
		return true
	})
	files, err := filepath.Glob(filepath.Join("..", "cmd", "driftline", "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			call, ok := n.(*ast.CallExpr)
			if !ok || len(call.Args) != 1 {
				return true
			}
			if fn, ok := call.Fun.(*ast.SelectorExpr); !ok || fn.Sel.Name != "Getenv" {
				return true
			}
			switch arg := call.Args[0].(type) {
			case *ast.SelectorExpr:
				if v, ok := values[arg.Sel.Name]; ok {
					read[v] = true
				}
			case *ast.BasicLit:
				// One list: a new variable is a constant of consumers.
				if v, _ := strconv.Unquote(arg.Value); strings.HasPrefix(v, "DRIFTLINE_") {
					t.Errorf("%s reads %s by a literal; add it to consumers.EnvNames and use the constant", path, v)
				}
			}
			return true
		})
	}
	for _, n := range consumers.EnvNames() {
		if !read[n] {
			t.Errorf("%s is in consumers.EnvNames but nothing reads it (Security.FromEnv or os.Getenv in cmd/driftline)", n)
		}
	}
}

// --- topics ----------------------------------------------------------------

func TestTopicDefinitionsAgreeWithTheCode(t *testing.T) {
	type topic struct {
		partitions int
		policy     string
	}
	got := map[string]topic{}
	for _, d := range docs(t, filepath.Join("kafka", "topics.yaml")) {
		if at(d, "kind") != "KafkaTopic" {
			t.Errorf("unexpected kind %v in topics.yaml", at(d, "kind"))
			continue
		}
		name := str(at(d, "spec", "topicName"))
		p, _ := at(d, "spec", "partitions").(int)
		got[name] = topic{p, str(at(d, "spec", "config", "cleanup.policy"))}
		if r, _ := at(d, "spec", "replicas").(int); r < 3 {
			t.Errorf("%s: replicas %d, want >= 3 on a real cluster", name, r)
		}
	}
	want := map[string]topic{}
	for _, s := range consumers.DefaultTopics().Specs(partitions) {
		policy := "delete"
		if v := s.Configs["cleanup.policy"]; v != nil {
			policy = *v
		}
		want[s.Name] = topic{int(s.Partitions), policy}
	}
	for name, w := range want {
		g, ok := got[name]
		switch {
		case !ok:
			t.Errorf("topic %s (from consumers.Topics.Specs) is missing from topics.yaml", name)
		case g != w:
			t.Errorf("topic %s: topics.yaml has %d partitions, cleanup.policy %s; the code provisions %d, %s", name, g.partitions, g.policy, w.partitions, w.policy)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("topics.yaml defines %s, which the code does not use", name)
		}
	}
	// The registry and every state changelog are compacted.
	for name, g := range got {
		if (name == consumers.DefaultTopics().Models || strings.HasPrefix(name, consumers.ChangelogPrefix)) && g.policy != "compact" {
			t.Errorf("%s must be compacted, is %s", name, g.policy)
		}
	}
}

// --- kubernetes ------------------------------------------------------------

func TestKubernetesManifestsAgreeWithTheCode(t *testing.T) {
	runFlags := commandFlags(t, "run.go")
	kust := docs(t, filepath.Join("k8s", "kustomization.yaml"))[0]
	var all []obj
	for _, r := range list(kust["resources"]) {
		all = append(all, docs(t, filepath.Join("k8s", str(r)))...)
	}
	image := str(at(kust, "images", 0, "name"))
	configMaps := map[string]obj{}
	for _, d := range all {
		if d["kind"] == "ConfigMap" {
			configMaps[str(at(d, "metadata", "name"))] = d
		}
	}
	if len(configMaps) == 0 {
		t.Fatal("no ConfigMap in the kustomization")
	}
	for name, cm := range configMaps {
		data, _ := cm["data"].(obj)
		for k, v := range data {
			checkEnvName(t, "ConfigMap "+name, k)
			if slices.Contains(secretEnv, k) {
				t.Errorf("ConfigMap %s carries the secret %s; use a Secret ref", name, k)
			}
			if k == consumers.EnvKafkaBrokers && str(v) == "" {
				t.Errorf("ConfigMap %s: empty %s", name, k)
			}
		}
	}

	roles := map[string]int{}
	for _, d := range all {
		if d["kind"] != "Deployment" {
			continue
		}
		name := str(at(d, "metadata", "name"))
		pod := at(d, "spec", "template")
		if sel, lbl := at(d, "spec", "selector", "matchLabels", "app.kubernetes.io/component"), at(pod, "metadata", "labels", "app.kubernetes.io/component"); sel == nil || sel != lbl {
			t.Errorf("%s: selector %v does not match the pod label %v", name, sel, lbl)
		}
		containers := list(at(pod, "spec", "containers"))
		if len(containers) != 1 {
			t.Fatalf("%s: %d containers, want 1", name, len(containers))
		}
		c := containers[0]
		if str(at(c, "image")) != image {
			t.Errorf("%s: image %q is not the kustomization's %q", name, at(c, "image"), image)
		}
		cmd, flags := parseArgs(t, name, list(at(c, "args")))
		if cmd != "run" {
			t.Errorf("%s: runs %q, want run", name, cmd)
		}
		checkFlags(t, name, flags, runFlags)
		rs, err := app.ParseRoles(flags["roles"])
		if err != nil {
			t.Errorf("%s: --roles: %v", name, err)
		}
		replicas, _ := at(d, "spec", "replicas").(int)
		for _, r := range rs {
			roles[r] += replicas
		}
		if flags["partitions"] != strconv.Itoa(partitions) {
			t.Errorf("%s: --partitions=%s, topics.yaml has %d", name, flags["partitions"], partitions)
		}
		if replicas < 1 || replicas > partitions {
			t.Errorf("%s: %d replicas; a consumer group uses at most %d (the partitions)", name, replicas, partitions)
		}
		if slices.Contains(rs, app.RoleMonitor) && replicas != 1 {
			t.Errorf("%s: the monitor keeps its windows per process; run 1 replica, not %d", name, replicas)
		}

		// Metrics port: flag, containerPort, scrape annotation agree.
		_, port, err := net.SplitHostPort(flags["metrics-addr"])
		if err != nil || port != metricsPort || !strings.HasPrefix(flags["metrics-addr"], "0.0.0.0:") {
			t.Errorf("%s: --metrics-addr=%q, want 0.0.0.0:%s (the default listens on loopback only)", name, flags["metrics-addr"], metricsPort)
		}
		var portName string
		for _, p := range list(at(c, "ports")) {
			if str(at(p, "containerPort")) == port {
				portName = str(at(p, "name"))
			}
		}
		if portName == "" {
			t.Errorf("%s: no containerPort %s", name, port)
		}
		if a := str(at(pod, "metadata", "annotations", "prometheus.io/port")); a != port {
			t.Errorf("%s: prometheus.io/port %q, metrics on %s", name, a, port)
		}
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			if got := str(at(c, probe, "httpGet", "path")); got != path {
				t.Errorf("%s: %s path %q, want %s", name, probe, got, path)
			}
			if got := str(at(c, probe, "httpGet", "port")); got != portName && got != port {
				t.Errorf("%s: %s port %q, metrics port is %s (%s)", name, probe, got, portName, port)
			}
		}

		// Environment: only names the code reads; secrets from Secrets.
		for _, e := range list(at(c, "env")) {
			n := str(at(e, "name"))
			checkEnvName(t, name, n)
			if slices.Contains(secretEnv, n) && (at(e, "value") != nil || at(e, "valueFrom", "secretKeyRef", "name") == nil) {
				t.Errorf("%s: %s must come from a secretKeyRef", name, n)
			}
		}
		for _, ef := range list(at(c, "envFrom")) {
			if cm := str(at(ef, "configMapRef", "name")); cm != "" && configMaps[cm] == nil {
				t.Errorf("%s: envFrom ConfigMap %s is not in the kustomization", name, cm)
			}
		}
		if slices.Contains(rs, app.RoleSink) && !hasEnv(c, consumers.EnvClickHouseDSN) {
			t.Errorf("%s: the sink needs %s", name, consumers.EnvClickHouseDSN)
		}
		// The CA file the ConfigMap names is where a volume is mounted.
		for _, cm := range configMaps {
			if ca := str(at(cm, "data", consumers.EnvKafkaTLSCAFile)); ca != "" {
				mounted := false
				for _, m := range list(at(c, "volumeMounts")) {
					if strings.HasPrefix(ca, str(at(m, "mountPath"))+"/") {
						mounted = true
					}
				}
				if !mounted {
					t.Errorf("%s: %s=%s is not under any volumeMount", name, consumers.EnvKafkaTLSCAFile, ca)
				}
			}
		}
	}
	for _, r := range app.AllRoles {
		if roles[r] == 0 {
			t.Errorf("role %s has no Deployment", r)
		}
	}
}

func hasEnv(c any, name string) bool {
	for _, e := range list(at(c, "env")) {
		if str(at(e, "name")) == name {
			return true
		}
	}
	return false
}

// --- compose ---------------------------------------------------------------

func TestComposeAgreesWithTheCode(t *testing.T) {
	runFlags, simFlags := commandFlags(t, "run.go"), commandFlags(t, "simulate.go")
	c := docs(t, filepath.Join("compose", "compose.yaml"))[0]
	services, _ := c["services"].(obj)
	for _, s := range []string{"kafka", "clickhouse", "prometheus", "grafana"} {
		if services[s] == nil {
			t.Errorf("compose has no %s service", s)
		}
	}
	if img := str(at(services, "kafka", "image")); !strings.HasPrefix(img, "apache/kafka:") {
		t.Errorf("kafka image %q, want apache/kafka (KRaft)", img)
	}
	if roles := str(at(services, "kafka", "environment", "KAFKA_PROCESS_ROLES")); roles != "broker,controller" {
		t.Errorf("kafka KAFKA_PROCESS_ROLES=%q, want KRaft broker,controller", roles)
	}
	roles := map[string]bool{}
	scraped := map[string]bool{}
	for name, sv := range services {
		cmd := list(at(sv, "command"))
		if str(at(sv, "image")) != "driftline:dev" || len(cmd) == 0 {
			continue
		}
		sub, flags := parseArgs(t, "compose "+name, cmd)
		switch sub {
		case "run":
			checkFlags(t, "compose "+name, flags, runFlags)
			rs, err := app.ParseRoles(flags["roles"])
			if err != nil {
				t.Errorf("compose %s: %v", name, err)
			}
			for _, r := range rs {
				roles[r] = true
			}
			if flags["metrics-addr"] != "0.0.0.0:"+metricsPort {
				t.Errorf("compose %s: --metrics-addr=%q, prometheus.yml scrapes :%s", name, flags["metrics-addr"], metricsPort)
			}
			scraped[name] = false
		case "simulate":
			checkFlags(t, "compose "+name, flags, simFlags)
		default:
			t.Errorf("compose %s runs driftline %s", name, sub)
		}
		env, _ := at(sv, "environment").(obj)
		for k := range env {
			checkEnvName(t, "compose "+name, k)
		}
		if env[consumers.EnvKafkaBrokers] == nil && flags["brokers"] == "" {
			t.Errorf("compose %s: no brokers (%s or --brokers)", name, consumers.EnvKafkaBrokers)
		}
	}
	for _, r := range app.AllRoles {
		if !roles[r] {
			t.Errorf("compose runs no %s role", r)
		}
	}

	// prometheus.yml scrapes exactly the role services, on the metrics port.
	prom := docs(t, filepath.Join("prometheus", "prometheus.yml"))[0]
	for _, sc := range list(prom["scrape_configs"]) {
		if str(at(sc, "job_name")) != "driftline" {
			continue
		}
		for _, st := range list(at(sc, "static_configs")) {
			for _, tg := range list(at(st, "targets")) {
				host, port, err := net.SplitHostPort(str(tg))
				if err != nil || port != metricsPort {
					t.Errorf("prometheus.yml target %v: want <service>:%s", tg, metricsPort)
				}
				if _, ok := scraped[host]; !ok {
					t.Errorf("prometheus.yml scrapes %s, which is not a driftline service of compose.yaml", host)
				}
				scraped[host] = true
			}
		}
	}
	for s, ok := range scraped {
		if !ok {
			t.Errorf("prometheus.yml does not scrape the compose service %s", s)
		}
	}
	// Mounted files exist and the rule file is the one Prometheus loads.
	for _, name := range []string{"prometheus", "grafana"} {
		for _, v := range list(at(services, name, "volumes")) {
			src, dst, _ := strings.Cut(str(v), ":")
			if _, err := os.Stat(filepath.Join("compose", src)); err != nil {
				t.Errorf("compose %s mounts %s: %v", name, src, err)
			}
			if name == "prometheus" && strings.HasSuffix(src, "alerts.yml") && !slices.Contains(toStrings(prom["rule_files"]), strings.TrimSuffix(dst, ":ro")) {
				t.Errorf("alerts.yml is mounted at %s but prometheus.yml loads %v", dst, prom["rule_files"])
			}
		}
	}
}

func toStrings(v any) []string {
	var out []string
	for _, x := range list(v) {
		out = append(out, str(x))
	}
	return out
}

// --- dashboards and alerts against a real process --------------------------

var metricName = regexp.MustCompile(`\bdriftline_[a-z0-9_]+`)

// expressions returns every PromQL expression of the dashboard and the alert
// rules, by where it is.
func expressions(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	b, err := os.ReadFile(filepath.Join("grafana", "driftline.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			Title      string `json:"title"`
			Type       string `json:"type"`
			Datasource struct {
				UID string `json:"uid"`
			} `json:"datasource"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
		Annotations struct {
			List []struct {
				Name string `json:"name"`
				Expr string `json:"expr"`
			} `json:"list"`
		} `json:"annotations"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/driftline.json: %v", err)
	}
	ds := str(at(docs(t, filepath.Join("grafana", "provisioning", "datasources", "prometheus.yml"))[0], "datasources", 0, "uid"))
	for _, p := range dash.Panels {
		if p.Type == "row" {
			continue
		}
		if p.Datasource.UID != ds {
			t.Errorf("panel %q uses datasource %q, the provisioned one is %q", p.Title, p.Datasource.UID, ds)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for i, tg := range p.Targets {
			out[fmt.Sprintf("panel %q query %d", p.Title, i)] = tg.Expr
		}
	}
	for _, a := range dash.Annotations.List {
		out["annotation "+a.Name] = a.Expr
	}
	rules := docs(t, filepath.Join("prometheus", "alerts.yml"))[0]
	n := 0
	for _, g := range list(rules["groups"]) {
		for _, r := range list(at(g, "rules")) {
			name := str(at(r, "alert"))
			if name == "" || str(at(r, "expr")) == "" || str(at(r, "labels", "severity")) == "" || str(at(r, "annotations", "summary")) == "" {
				t.Errorf("alert rule %v needs alert, expr, labels.severity and annotations.summary", r)
			}
			out["alert "+name] = str(at(r, "expr"))
			n++
		}
	}
	if n < 7 {
		t.Errorf("only %d alert rules", n)
	}
	for where, e := range out {
		if strings.Count(e, "(") != strings.Count(e, ")") || strings.Count(e, "{") != strings.Count(e, "}") || strings.Count(e, "[") != strings.Count(e, "]") {
			t.Errorf("%s: unbalanced brackets in %q", where, e)
		}
	}
	return out
}

// syncBuffer collects a process's logs from its goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestDashboardAndAlertsUseOnlyRealMetrics assembles every role through
// internal/app, as `driftline run` does, against an embedded broker that
// requires SCRAM, and checks: each driftline_* name of the dashboard and
// the alert rules is registered on the process's registry; /healthz,
// /readyz and /metrics (the probe paths of the manifests) answer; and
// neither the Kafka password nor the ClickHouse password reaches the logs.
func TestDashboardAndAlertsUseOnlyRealMetrics(t *testing.T) {
	const kafkaSecret, chSecret = "kafka-Pa55-do-not-log", "ch-Pa55-do-not-log"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser(consumers.SASLScramSHA512, "driftline", kafkaSecret))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg := app.Config{
		Kafka:       consumers.KafkaConfig{Brokers: cluster.ListenAddrs(), Partitions: 2},
		Roles:       app.AllRoles,
		Provision:   true,
		MetricsAddr: "127.0.0.1:0",
	}
	cfg.Sink.DSN = "clickhouse://driftline:" + chSecret + "@127.0.0.1:1/driftline"
	env := map[string]string{
		consumers.EnvKafkaSASLMechanism: consumers.SASLScramSHA512,
		consumers.EnvKafkaSASLUser:      "driftline",
		consumers.EnvKafkaSASLPassword:  kafkaSecret,
	}
	if err := cfg.Kafka.Security.FromEnv(func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	p, err := app.New(cfg, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("process did not stop within 30s")
		}
	})
	// A role stopped while it is still starting may report the
	// cancellation (context.Canceled); anything else is a failure.
	defer func() {
		if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
			t.Error(err)
		}
	}()

	addrRe := regexp.MustCompile(`msg="serving metrics" addr=(\S+)`)
	var addr string
	checkfor.Until(t, 15*time.Second, "the metrics endpoint", func() bool {
		m := addrRe.FindStringSubmatch(logs.String())
		if m != nil {
			addr = m[1]
		}
		return addr != ""
	})
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	// Ready once the registry feed read driftline.models, through SCRAM.
	checkfor.Until(t, 20*time.Second, "/readyz to answer 200", func() bool { code, _ := get("/readyz"); return code == http.StatusOK })
	// Client metrics (kprom) and consumer lag appear once the roles' clients
	// connect and the lag poller ran.
	checkfor.Until(t, 20*time.Second, "kprom and lag series on /metrics", func() bool {
		_, body := get("/metrics")
		return strings.Contains(body, consumers.ClientMetricsNamespace+"_read_bytes_total{") &&
			strings.Contains(body, "driftline_consumer_lag_polls_total ")
	})

	checkfor.Until(t, 20*time.Second, "the feature stage to run", func() bool {
		return strings.Contains(logs.String(), "feature stage running")
	})

	reg := p.Registry()
	exprs := expressions(t)
	used := map[string][]string{}
	for where, e := range exprs {
		for _, n := range metricName.FindAllString(e, -1) {
			used[n] = append(used[n], where)
		}
	}
	if len(used) < 25 {
		t.Errorf("the dashboard and rules use only %d driftline_* metrics", len(used))
	}
	for name, where := range used {
		if !registered(reg, name) {
			t.Errorf("%s (used by %s) is not a metric of a Driftline process", name, strings.Join(where, ", "))
		}
	}
	// The check itself can fail.
	if registered(reg, "driftline_features_no_such_total") {
		t.Error("a made-up metric name counts as registered: the check is broken")
	}
	// The list of what must be watched is on the dashboard.
	for _, must := range []string{
		"driftline_consumer_lag", "driftline_features_dlq_total", "driftline_features_watermark_delay_seconds",
		"driftline_features_record_to_prediction_seconds_bucket", "driftline_monitor_psi", "driftline_monitor_roc_auc",
		"driftline_monitor_log_loss", "driftline_monitor_drift", "driftline_monitor_segment_accuracy", "driftline_model_info", "driftline_monitor_alerts_total",
		"driftline_monitor_retrain_requests_total", "driftline_sink_rows_total", "driftline_sink_insert_errors_total",
		"driftline_sink_insert_seconds_bucket", "driftline_sink_batch_rows_sum", "driftline_kafka_produce_bytes_total",
	} {
		onDash := false
		for _, w := range used[must] {
			onDash = onDash || strings.HasPrefix(w, "panel")
		}
		if !onDash {
			t.Errorf("no dashboard panel shows %s", must)
		}
	}

	if err := stop(); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("process: %v", err)
	}
	out := logs.String()
	for _, s := range []string{kafkaSecret, chSecret} {
		if strings.Contains(out, s) {
			t.Errorf("a password reached the process logs:\n%s", out)
		}
	}
	if !strings.Contains(out, "sasl_password_set=true") {
		t.Errorf("the process did not log its (redacted) Kafka security settings:\n%s", out)
	}
}

// registered reports whether name, or the histogram it is a series of, is
// registered on reg. A vector without children is not gathered, so names
// are probed: registering another collector under a taken name fails.
func registered(reg *prometheus.Registry, name string) bool {
	if probe(reg, name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && probe(reg, base) {
			return isHistogram(reg, base)
		}
	}
	return false
}

func probe(reg *prometheus.Registry, name string) bool {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "deploy test probe"})
	if err := reg.Register(g); err != nil {
		return true
	}
	reg.Unregister(g)
	return false
}

// isHistogram is true when base is gathered as a histogram or summary, or
// not gathered at all (a histogram vector with no children yet).
func isHistogram(reg *prometheus.Registry, base string) bool {
	mfs, err := reg.Gather()
	if err != nil {
		return false
	}
	for _, mf := range mfs {
		if mf.GetName() == base {
			return mf.GetType().String() == "HISTOGRAM" || mf.GetType().String() == "SUMMARY"
		}
	}
	return true
}
