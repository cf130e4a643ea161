package monitors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/encoding/json"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/schemas"
)

// WebhookConfig configures the alert forwarder.
type WebhookConfig struct {
	// URL receives a POST per alert, a Slack incoming-webhook compatible
	// JSON body ({"text": ..., "blocks": [...]}). Required.
	URL string `yaml:"url"`
	// Group is the consumer group on the alerts topic. Default
	// "driftline-webhook".
	Group string `yaml:"group"`
	// Timeout per attempt. Default 5s.
	Timeout time.Duration `yaml:"timeout"`
	// Attempts per alert before it is given up (counted, logged). Default 5.
	Attempts int `yaml:"attempts"`
	// Backoff before the second attempt, doubling each time. Default 500ms.
	Backoff time.Duration `yaml:"backoff"`
	// Resolved forwards resolved alerts too. Default true via flags; the
	// zero value forwards firing alerts only.
	Resolved bool `yaml:"resolved"`
}

func (c *WebhookConfig) setDefaults() {
	if c.Group == "" {
		c.Group = "driftline-webhook"
	}
	if c.Timeout == 0 {
		c.Timeout = 5 * time.Second
	}
	if c.Attempts == 0 {
		c.Attempts = 5
	}
	if c.Backoff == 0 {
		c.Backoff = 500 * time.Millisecond
	}
}

// Validate reports a config the forwarder cannot run with.
func (c *WebhookConfig) Validate() error {
	u, err := url.Parse(c.URL)
	switch {
	case c.URL == "":
		return errors.New("webhook: url is required")
	case err != nil:
		return fmt.Errorf("webhook: cannot parse url: %w", err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("webhook: url must be http or https, got %q", u.Scheme)
	case c.Attempts < 1:
		return fmt.Errorf("webhook: attempts must be >= 1, got %d", c.Attempts)
	case c.Timeout <= 0 || c.Backoff < 0:
		return fmt.Errorf("webhook: timeout must be > 0 and backoff >= 0")
	}
	return nil
}

// ErrWebhookRejected is returned by Post when the receiver answered with a
// client error other than 408 or 429: retrying the same body cannot help.
var ErrWebhookRejected = errors.New("webhook rejected the alert")

// Webhook forwards driftline.alerts to an HTTP endpoint. It is at least
// once: it commits an alert's offset only after the post succeeded or was
// given up, so a restart may post an alert again (receivers de-duplicate by
// the alert id in the message).
type Webhook struct {
	cfg    WebhookConfig
	kafka  consumers.KafkaConfig
	client *http.Client
	log    *slog.Logger

	posted, failed, retries prometheus.Counter
}

// NewWebhook builds the forwarder.
func NewWebhook(cfg WebhookConfig, kafka consumers.KafkaConfig, log *slog.Logger, reg prometheus.Registerer) (*Webhook, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	results := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "driftline_webhook_alerts_total", Help: "Alerts forwarded to the webhook, by result (posted, failed: given up after every attempt or rejected).",
	}, []string{"result"})
	retries := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "driftline_webhook_retries_total", Help: "Webhook attempts that were retried.",
	})
	reg.MustRegister(results, retries)
	return &Webhook{
		cfg: cfg, kafka: kafka, client: &http.Client{Timeout: cfg.Timeout},
		log:    log.With("role", "webhook"),
		posted: results.WithLabelValues("posted"), failed: results.WithLabelValues("failed"), retries: retries,
	}, nil
}

// Run forwards alerts until ctx ends. It starts at the end of the topic
// the first time its group runs (old alerts are not replayed to chat).
func (w *Webhook) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(w.kafka.Opts(w.log,
		kgo.ConsumerGroup(w.cfg.Group),
		kgo.ConsumeTopics(w.kafka.Topics.Alerts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtEnd()),
		kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(200*time.Millisecond),
	)...)
	if err != nil {
		return fmt.Errorf("cannot create webhook client: %w", err)
	}
	defer cl.Close()
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fetches.EachError(func(t string, p int32, err error) {
			w.log.Warn("fetch failed", "topic", t, "partition", p, "err", err)
		})
		var done []*kgo.Record
		fetches.EachRecord(func(r *kgo.Record) {
			if ctx.Err() != nil {
				return
			}
			w.forward(ctx, r)
			done = append(done, r)
		})
		if ctx.Err() != nil {
			return nil
		}
		if err := cl.CommitRecords(ctx, done...); err != nil {
			w.log.Warn("cannot commit webhook offsets; alerts may be posted again", "err", err)
		}
	}
}

func (w *Webhook) forward(ctx context.Context, r *kgo.Record) {
	var a schemas.Alert
	if err := json.Unmarshal(r.Value, &a); err != nil {
		w.log.Error("cannot decode alert; skipped", "offset", r.Offset, "err", err)
		w.failed.Inc()
		return
	}
	if a.Status == schemas.AlertResolved && !w.cfg.Resolved {
		return
	}
	if err := w.Post(ctx, a); err != nil {
		w.failed.Inc()
		w.log.Error("cannot post alert to webhook; given up", "id", a.ID, "err", err)
		return
	}
	w.posted.Inc()
}

// Post sends one alert, retrying timeouts, connection errors, 408, 429 and
// 5xx answers with exponential backoff, up to Attempts in all.
func (w *Webhook) Post(ctx context.Context, a schemas.Alert) error {
	body, err := json.Marshal(SlackMessage(a))
	if err != nil {
		return fmt.Errorf("cannot encode webhook message: %w", err)
	}
	backoff := w.cfg.Backoff
	for attempt := 1; ; attempt++ {
		err = w.postOnce(ctx, body)
		if err == nil || errors.Is(err, ErrWebhookRejected) || attempt == w.cfg.Attempts {
			return err
		}
		w.retries.Inc()
		w.log.Warn("webhook post failed; retrying", "id", a.ID, "attempt", attempt, "in", backoff, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("cannot post alert %s: %w", a.ID, ctx.Err())
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

func (w *Webhook) postOnce(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cannot build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := w.client.Do(req)
	if err != nil {
		// A webhook URL's path is its secret (Slack's /services/T../B../X..):
		// the client's *url.Error quotes it whole, so keep only its cause.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Errorf("cannot post to webhook at %s: %w", req.URL.Host, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c == http.StatusRequestTimeout || c == http.StatusTooManyRequests || c >= 500:
		return fmt.Errorf("cannot post to webhook: %s", resp.Status)
	default:
		return fmt.Errorf("%w: %s", ErrWebhookRejected, resp.Status)
	}
}

// SlackMessage is an alert as a Slack incoming-webhook message: a one-line
// text (what notifications show) and blocks with the fields on-call needs.
// Other chat tools accepting Slack-compatible webhooks (Mattermost,
// Rocket.Chat, Discord's /slack endpoint) read the same body.
func SlackMessage(a schemas.Alert) map[string]any {
	status := a.Status
	if status == "" {
		status = schemas.AlertFiring
	}
	what := a.Statistic
	if a.Feature != "" {
		what += "(" + a.Feature + ")"
	}
	if a.Segment != "" {
		what += " [" + a.Segment + "]"
	}
	cmp := a.Comparison
	if cmp == "" {
		cmp = ">"
	}
	text := fmt.Sprintf("[%s] %s %s on %s/v%d: %s = %.4g (threshold %s %.4g, %d samples)",
		strings.ToUpper(a.Severity), status, a.Kind, a.Model, a.Version, what, a.Value, cmp, a.Threshold, a.Samples)
	fields := []map[string]any{
		mrkdwn("*Model*\n%s v%d", a.Model, a.Version),
		mrkdwn("*Kind*\n%s (%s)", a.Kind, status),
		mrkdwn("*Statistic*\n%s = %.4g", what, a.Value),
		mrkdwn("*Threshold*\n%s %.4g", cmp, a.Threshold),
		mrkdwn("*Window*\n%s to %s", a.Window.From.UTC().Format(time.RFC3339), a.Window.To.UTC().Format(time.RFC3339)),
		mrkdwn("*Samples*\n%d", a.Samples),
	}
	return map[string]any{
		"text": text,
		"blocks": []map[string]any{
			{"type": "section", "text": mrkdwn("%s", text)},
			{"type": "section", "fields": fields},
			{"type": "context", "elements": []map[string]any{mrkdwn("id `%s` · dedup `%s`", a.ID, a.DedupKey)}},
		},
	}
}

func mrkdwn(format string, args ...any) map[string]any {
	return map[string]any{"type": "mrkdwn", "text": fmt.Sprintf(format, args...)}
}
