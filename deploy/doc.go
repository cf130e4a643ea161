// Package deploy holds what operators run Driftline with: Kubernetes
// manifests (k8s/), topic definitions for a real Kafka (kafka/), a compose
// file with Apache Kafka, ClickHouse, Prometheus and Grafana (compose/), the
// Grafana dashboard (grafana/) and the Prometheus scrape config and alert
// rules (prometheus/). It has no Go code of its own: its tests parse those
// files and cross-check them with the code (topics, flags, env names, ports,
// probe paths, roles, and every metric a dashboard panel or alert rule
// uses), so a rename in the code fails here instead of in production.
// See docs/operations.md.
package deploy
