package features

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/driftline/driftline/schemas"
)

// A poll holds a partition's cart and clickstream records as two runs; the
// cart run may come first. The stage merges them by record time, so a cart
// event is featurised after the same session's earlier clicks in the poll.
func TestPollIsHandledInRecordTimeOrderAcrossTopics(t *testing.T) {
	s := newStage(t, true)
	rec := func(topic, typ string, at time.Duration, extra string) *kgo.Record {
		v := fmt.Sprintf(`{"event_id":"e%d","type":%q,"ts":%q,"user_id":"u1","session_id":"s1","device":"mobile"%s}`,
			at/time.Second, typ, t0.Add(at).Format(time.RFC3339Nano), extra)
		return &kgo.Record{Topic: topic, Partition: 0, Key: []byte("u1"), Value: []byte(v), Timestamp: t0.Add(at)}
	}
	clicks := []*kgo.Record{
		rec(schemas.TopicClickstream, schemas.PageView, 0, ""),
		rec(schemas.TopicClickstream, schemas.ProductView, time.Minute, `,"product_id":"p1","price":10`),
		rec(schemas.TopicClickstream, schemas.ProductView, 3*time.Minute, `,"product_id":"p2","price":30`),
	}
	cart := []*kgo.Record{rec(schemas.TopicCart, schemas.AddToCart, 2*time.Minute, cartItem)}
	fetches := kgo.Fetches{{Topics: []kgo.FetchTopic{
		{Topic: schemas.TopicCart, Partitions: []kgo.FetchPartition{{Partition: 0, Records: cart}}},
		{Topic: schemas.TopicClickstream, Partitions: []kgo.FetchPartition{{Partition: 0, Records: clicks}}},
	}}}
	s.p.handleMerged(fetches)
	vecs := decodeAll[schemas.FeatureVector](t, s.out(schemas.TopicFeatures))
	if len(vecs) != 1 {
		t.Fatalf("got %d vectors, want 1", len(vecs))
	}
	names := s.p.cfg.Spec.Features
	get := func(name string) float64 { return vecs[0].Values[slices.Index(names, name)] }
	// The page view and the first product view precede the cart event; the
	// second product view follows it.
	if got := get("session_events"); got != 3 {
		t.Errorf("session_events = %g, want 3 (two clicks before the cart event, and the cart event)", got)
	}
	if got := get("session_product_views"); got != 1 {
		t.Errorf("session_product_views = %g, want 1", got)
	}
}

// Records of two topics with the same timestamp are handled in input order
// (clickstream before cart), whichever run the fetch lists first: a click
// stamped with the cart event's millisecond counts in its vector in both
// orders, so the outputs depend on the records only.
func TestEqualTimestampsAreHandledInInputOrder(t *testing.T) {
	for _, cartFirst := range []bool{true, false} {
		s := newStage(t, true)
		at := t0.Add(time.Minute)
		rec := func(topic, id, typ, extra string) *kgo.Record {
			v := fmt.Sprintf(`{"event_id":%q,"type":%q,"ts":%q,"user_id":"u1","session_id":"s1"%s}`, id, typ, at.Format(time.RFC3339Nano), extra)
			return &kgo.Record{Topic: topic, Partition: 0, Key: []byte("u1"), Value: []byte(v), Timestamp: at}
		}
		runs := []kgo.FetchTopic{
			{Topic: schemas.TopicClickstream, Partitions: []kgo.FetchPartition{{Records: []*kgo.Record{rec(schemas.TopicClickstream, "c1", schemas.ProductView, `,"product_id":"p1","price":10`)}}}},
			{Topic: schemas.TopicCart, Partitions: []kgo.FetchPartition{{Records: []*kgo.Record{rec(schemas.TopicCart, "a1", schemas.AddToCart, cartItem)}}}},
		}
		if cartFirst {
			runs[0], runs[1] = runs[1], runs[0]
		}
		s.p.handleMerged(kgo.Fetches{{Topics: runs}})
		vecs := decodeAll[schemas.FeatureVector](t, s.out(schemas.TopicFeatures))
		if len(vecs) != 1 {
			t.Fatalf("cart run first %v: got %d vectors, want 1", cartFirst, len(vecs))
		}
		if got := vecs[0].Values[slices.Index(s.p.cfg.Spec.Features, "session_product_views")]; got != 1 {
			t.Errorf("cart run first %v: session_product_views = %g, want 1 (the click at the same millisecond is handled first)", cartFirst, got)
		}
	}
}
