package trainers

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/encoding/json"

	"github.com/driftline/driftline/internal/logreg"
	"github.com/driftline/driftline/internal/profile"
	"github.com/driftline/driftline/schemas"
)

// storefrontRows draws n labelled vectors of nf continuous, heavy-tailed
// features (the worst case for quantile sketches) with the storefront's
// segment mix: 3 devices, 12 countries, 6 referrers.
func storefrontRows(rng *rand.Rand, n, nf int) ([]string, []schemas.Label) {
	names := make([]string, nf)
	for j := range names {
		names[j] = "f" + strconv.Itoa(j)
	}
	devices := []string{"mobile", "desktop", "tablet"}
	countries := []string{"US", "GB", "DE", "FR", "NL", "ES", "IT", "SE", "PL", "BR", "IN", "JP"}
	referrers := []string{"direct", "search", "social", "email", "ads", "affiliate"}
	rows := make([]schemas.Label, n)
	for i := range rows {
		x := make([]float64, nf)
		for j := range x {
			x[j] = math.Exp(rng.NormFloat64() * 2)
		}
		y := 0
		if rng.Float64() < 1/(1+math.Exp(-(math.Log(x[0])+0.5*math.Log(x[1])))) {
			y = 1
		}
		rows[i] = schemas.Label{EventTime: t0.Add(time.Duration(i) * time.Second), Values: x, Label: y,
			Segments: schemas.Segments{Device: devices[rng.IntN(3)], Country: countries[rng.IntN(12)], Referrer: referrers[rng.IntN(6)]}}
	}
	return names, rows
}

func recordBytes(t *testing.T, v *schemas.ModelVersion) int {
	t.Helper()
	b, err := json.Marshal(schemas.RegistryRecord{Kind: schemas.RegistryVersion, Version: v})
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

// TestVersionCarriesSegmentProfilesAndStaysSmall: a version's reference
// profile has one profile per segment value with SegmentMinRows training
// rows, and its registry record stays far below Kafka's default 1 MB
// message limit with them, on 15 heavy-tailed features and 21 segment
// values (-v prints the sizes; DRIFTLINE_SEGMENT_ROWS sets the rows).
func TestVersionCarriesSegmentProfilesAndStaysSmall(t *testing.T) {
	n := 40_000
	if s := os.Getenv("DRIFTLINE_SEGMENT_ROWS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	names, rows := storefrontRows(rand.New(rand.NewPCG(13, 13)), n, 15)
	res, err := Train(TrainConfig{}, names, rows, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := res.Version
	with := recordBytes(t, &v)
	segs := v.Reference.Segments
	v.Reference.Segments = nil
	without := recordBytes(t, &v)

	// What the record would be with the full profiles BuildSegments
	// returns (a sketch per feature per segment).
	train := rows[:len(rows)-v.Metrics.HoldoutRows]
	X, _ := matrix(train)
	sg := make([]schemas.Segments, len(train))
	scores := make([]float64, len(train))
	m, _ := logreg.ModelFromVersion(&res.Version)
	for i := range train {
		sg[i], scores[i] = train[i].Segments, m.Predict(train[i].Values)
	}
	v.Reference.Segments = profile.BuildSegments(names, X, scores, sg, SegmentDims, SegmentMinRows, 10)
	full := recordBytes(t, &v)
	t.Logf("%d rows: version record %d B without segments, %d B with %d compact segment profiles, %d B with full ones (sketches)",
		n, without, with, len(segs), full)

	if len(segs) != 3+12+6 {
		t.Errorf("%d segment profiles, want 21 (every value has >= %d rows)", len(segs), SegmentMinRows)
	}
	for _, s := range segs {
		for _, p := range append(s.Features, s.Score) {
			if err := profile.Validate(&p); err != nil {
				t.Errorf("segment %s: %v", s.Segment, err)
			}
		}
		if s.Rows < SegmentMinRows || len(s.Features) != 15 || len(s.Score.Fractions) < 2 || s.Features[0].Sketch != nil {
			t.Errorf("segment %s: rows %d, %d features, score bins %d, sketch %v", s.Segment, s.Rows, len(s.Features), len(s.Score.Fractions), s.Features[0].Sketch != nil)
		}
	}
	if segs[0].Segment != "device=desktop" {
		t.Errorf("first segment %q, want device=desktop (dimension order, then value)", segs[0].Segment)
	}
	if with > 256<<10 {
		t.Errorf("version record is %d B with segment profiles, want <= 256 KiB (Kafka's default max message is 1 MB)", with)
	}
}

func TestCompactSegmentsKeepsTheLargest(t *testing.T) {
	var segs []schemas.SegmentProfile
	for i := range MaxSegmentProfiles + 5 {
		segs = append(segs, schemas.SegmentProfile{Segment: "country=c" + strconv.Itoa(i), Rows: 1000 + i})
	}
	out := compactSegments(segs)
	if len(out) != MaxSegmentProfiles || out[0].Segment != "country=c5" || out[len(out)-1].Rows != 1000+MaxSegmentProfiles+4 {
		t.Errorf("kept %d segments from %q to %d rows", len(out), out[0].Segment, out[len(out)-1].Rows)
	}
}
