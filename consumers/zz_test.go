package consumers
import (
 _ "github.com/ThreeDotsLabs/watermill/pubsub/tests"
 _ "github.com/santhosh-tekuri/jsonschema/v6"
 _ "github.com/twmb/franz-go/pkg/kgo"
 _ "github.com/twmb/franz-go/pkg/kadm"
 _ "github.com/twmb/franz-go/pkg/kfake"
 _ "github.com/ThreeDotsLabs/watermill/message"
 _ "github.com/ThreeDotsLabs/watermill/message/router/middleware"
 _ "github.com/segmentio/encoding/json"
 _ "github.com/prometheus/client_golang/prometheus"
 _ "github.com/prometheus/client_golang/prometheus/promhttp"
 _ "golang.org/x/sync/errgroup"
 _ "gopkg.in/yaml.v3"
)
