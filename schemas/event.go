package schemas

import "math"

// Event types of the storefront contract, grouped by the topic they belong on.
const (
	PageView       = "page_view"
	ProductView    = "product_view"
	Search         = "search"
	AddToCart      = "add_to_cart"
	RemoveFromCart = "remove_from_cart"
	CheckoutStart  = "checkout_started"
	Purchase       = "purchase"
	Refund         = "refund"
	Chargeback     = "chargeback"
)

// Default input topic names. Every name is configurable; these are what the
// storefront teams produce to unless told otherwise.
const (
	TopicClickstream  = "storefront.clickstream"
	TopicCart         = "storefront.cart"
	TopicTransactions = "storefront.transactions"
	TopicFeatures     = "driftline.features"
	TopicPredictions  = "driftline.predictions"
	TopicLabels       = "driftline.labels"
	TopicAlerts       = "driftline.alerts"
	TopicRetrain      = "driftline.retrain"
	TopicModels       = "driftline.models"
	TopicDLQ          = "driftline.dlq"
)

// CurrentSchemaVersion is the major version of the storefront contract this
// build understands. A record with a higher major version is rejected, not
// guessed at.
const CurrentSchemaVersion = 1

// Event is one storefront record as producers send it: one JSON object per
// Kafka record, keyed by user_id. Unknown extra fields are ignored.
//
// Decoding leaves absent fields at their "missing" sentinel (see Reset):
// empty strings, NaN for numbers and -1 for integers, so Validate can tell a
// missing required field from a zero.
type Event struct {
	EventID       string  `json:"event_id"`
	Type          string  `json:"type"`
	TS            string  `json:"ts"`
	UserID        string  `json:"user_id"`
	SessionID     string  `json:"session_id"`
	SchemaVersion int     `json:"schema_version"`
	Device        string  `json:"device,omitempty"`
	Country       string  `json:"country,omitempty"`
	Referrer      string  `json:"referrer,omitempty"`
	Page          string  `json:"page,omitempty"`
	Query         string  `json:"query,omitempty"`
	Category      string  `json:"category,omitempty"`
	ProductID     string  `json:"product_id,omitempty"`
	Price         float64 `json:"price"`
	Quantity      int     `json:"quantity"`
	CartValue     float64 `json:"cart_value"`
	Items         int     `json:"items"`
	OrderID       string  `json:"order_id,omitempty"`
	Amount        float64 `json:"amount"`
	Currency      string  `json:"currency,omitempty"`

	// TimeMillis is TS parsed by Validate: event time in Unix milliseconds.
	TimeMillis int64 `json:"-"`
}

// Reset puts every field at its "missing" sentinel before decoding into a
// reused Event.
func (e *Event) Reset() {
	*e = Event{
		SchemaVersion: -1,
		Price:         math.NaN(),
		Quantity:      -1,
		CartValue:     math.NaN(),
		Items:         -1,
		Amount:        math.NaN(),
	}
}

// NewEvent returns an Event with optional numeric fields marked absent, for
// producers (the simulator, tests) that fill in only what a type needs.
func NewEvent() Event {
	var e Event
	e.Reset()
	e.SchemaVersion = CurrentSchemaVersion
	return e
}

// TopicOf returns the input topic an event type belongs on, or "" for an
// unknown type.
func TopicOf(eventType string) string {
	switch eventType {
	case PageView, ProductView, Search:
		return TopicClickstream
	case AddToCart, RemoveFromCart, CheckoutStart:
		return TopicCart
	case Purchase, Refund, Chargeback:
		return TopicTransactions
	}
	return ""
}

// IsCartEvent reports whether the type is a cart event, the events the
// purchase-propensity model scores.
func IsCartEvent(eventType string) bool {
	return eventType == AddToCart || eventType == CheckoutStart
}
