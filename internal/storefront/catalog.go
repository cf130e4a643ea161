package storefront

import (
	"math"
	"math/rand/v2"
	"strconv"
)

// Segment values. Indices into these tables are what sessions store.
const (
	devMobile = iota
	devDesktop
	devTablet
)

var (
	deviceNames   = [...]string{"mobile", "desktop", "tablet"}
	deviceWeights = [...]float64{0.55, 0.35, 0.10}

	countryNames    = [...]string{"US", "DE", "GB", "FR", "IN", "BR"}
	countryCurrency = [...]string{"USD", "EUR", "GBP", "EUR", "INR", "BRL"}
	countryWeights  = [...]float64{0.40, 0.15, 0.15, 0.10, 0.10, 0.10}
)

const (
	refSearch = iota
	refDirect
	refSocial
	refEmail
	refAds
)

var (
	referrerNames   = [...]string{"search", "direct", "social", "email", "ads"}
	referrerWeights = [...]float64{0.35, 0.25, 0.20, 0.10, 0.10}
	// After a covariate shift social brings 40% of sessions; the others keep
	// their relative shares of the remaining 60%.
	referrerWeightsShifted = [...]float64{0.2625, 0.1875, 0.40, 0.075, 0.075}
)

// Covariate shift: share of sessions on mobile, reached by letting non-mobile
// users use a phone with probability (target-base)/(1-base).
const (
	shiftedMobileShare = 0.80
	covMobileSwitch    = (shiftedMobileShare - 0.55) / (1 - 0.55)
	covPriceFactor     = 1.8
)

// A category has a popularity weight and a median price; product base prices
// are lognormal around the median.
type category struct {
	name    string
	weight  float64
	median  float64
	queries [3]string
}

var categories = [...]category{
	{"electronics", 0.15, 95, [3]string{"headphones", "usb c charger", "smart watch"}},
	{"fashion", 0.20, 45, [3]string{"winter jacket", "sneakers", "wool scarf"}},
	{"home", 0.15, 38, [3]string{"throw blanket", "coffee grinder", "desk lamp"}},
	{"sports", 0.10, 42, [3]string{"yoga mat", "running socks", "water bottle"}},
	{"beauty", 0.10, 24, [3]string{"face serum", "lip balm", "shampoo"}},
	{"toys", 0.10, 28, [3]string{"lego", "board game", "puzzle"}},
	{"books", 0.10, 16, [3]string{"cookbook", "thriller", "notebook"}},
	{"grocery", 0.10, 9, [3]string{"coffee beans", "dark chocolate", "olive oil"}},
}

var categoryWeights = func() [len(categories)]float64 {
	var w [len(categories)]float64
	for i, c := range categories {
		w[i] = c.weight
	}
	return w
}()

// priceSigma is the log-scale spread of base prices within a category.
const priceSigma = 0.45

// productsPerCategory products per category; product i belongs to category
// i / productsPerCategory.
const productsPerCategory = 250

// Pages of page_view events: the fixed pages, then one per category.
var pages = func() []string {
	p := []string{"/", "/deals", "/new", "/account"}
	for _, c := range categories {
		p = append(p, "/c/"+c.name)
	}
	return p
}()

const (
	pageHome  = 0
	pageDeals = 1
	pageCat0  = 4
	numPages  = pageCat0 + len(categories)
)

type product struct {
	id   string
	cat  uint8
	base float64
}

// newCatalog draws the base prices of every product. Ids "p-<n>" are
// substrings of one string.
func newCatalog(rng *rand.Rand) []product {
	n := productsPerCategory * len(categories)
	var b []byte
	ends := make([]int, n)
	for i := 0; i < n; i++ {
		b = append(b, "p-"...)
		b = strconv.AppendInt(b, int64(i), 10)
		ends[i] = len(b)
	}
	all := string(b)
	ps := make([]product, n)
	start := 0
	for i := range ps {
		c := i / productsPerCategory
		ps[i] = product{
			id:   all[start:ends[i]],
			cat:  uint8(c),
			base: round2(categories[c].median * math.Exp(priceSigma*rng.NormFloat64())),
		}
		start = ends[i]
	}
	return ps
}

// pick draws an index with probability proportional to w (which sums to 1).
func pick(rng *rand.Rand, w []float64) int {
	x := rng.Float64()
	for i, p := range w {
		if x < p {
			return i
		}
		x -= p
	}
	return len(w) - 1
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
