package schemas

import "embed"

// The JSON Schema files (draft 2020-12) of the three input topics, one per
// topic, named after the default topic name. They state the same rules as
// Validate; TestCorpusAgreesWithJSONSchema holds the two together.
//
//go:embed jsonschema/*.json
var jsonSchemaFiles embed.FS

// JSONSchema returns the JSON Schema (draft 2020-12) of the records of an
// input topic, by its default name (TopicClickstream, TopicCart,
// TopicTransactions); ok is false for any other topic. The schema allows
// only that topic's event types and lets unknown fields through. What it
// cannot express (the size limit, UTF-8) is said in its description. The
// returned slice is a fresh copy.
func JSONSchema(topic string) (schema []byte, ok bool) {
	switch topic {
	case TopicClickstream, TopicCart, TopicTransactions:
	default:
		return nil, false
	}
	b, err := jsonSchemaFiles.ReadFile("jsonschema/" + topic + ".json")
	if err != nil {
		return nil, false
	}
	return b, true
}
