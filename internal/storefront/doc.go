// Package storefront is a deterministic storefront simulator: it produces the
// clickstream, cart and transaction events of the storefront contract
// (schemas.Event) for `driftline simulate`, `driftline demo` and tests.
//
// # Model of the world
//
// A fixed pool of users (Config.Users, ids "u-<n>") return for new sessions;
// a tenth of them are loyal and get about a third of all sessions. Each user
// has a fixed home device (mobile 55%, desktop 35%, tablet 10%) and country
// (US 40%, DE 15%, GB 15%, FR 10%, IN 10%, BR 10%); the country fixes the
// order currency (USD, EUR, GBP, INR, BRL). Sessions arrive as a Poisson
// process (Config.SessionsPerMinute) in event time; each session draws a
// referrer (search 35%, direct 25%, social 20%, email 10%, ads 10%). Every
// event of a session carries device, country and referrer.
//
// A session walks a funnel with 10-90 s gaps between events: 1-3 page_view
// and, sometimes, 1-2 search events in between; 1-8 product_view (product id,
// category and a lognormal price around 40 with a per-category scale); then,
// with a probability that grows with the number of views (about 40% of
// sessions overall), 1-3 add_to_cart of viewed products (quantity 1-3) and
// sometimes one remove_from_cart. Then the purchase decision, drawn with
//
//	p_buy = sigmoid(-2.9 + 1.3*(0.35*min(views,8) - 0.9*log1p(cart_value/50)
//	                + 0.7*[device desktop] + 0.9*[referrer email]
//	                + 0.5*min(user_purchases,3)) + N(0, 0.3²))
//
// where user_purchases counts the user's purchases with event time before the
// session start (what a streaming feature stage can know). A buying session
// emits checkout_started and a purchase 1-10 min later (amount = cart value,
// order id "o-<seed>-<session>"); a non-buying cart starts checkout with
// probability 0.35 and then abandons. Every purchase therefore falls within
// 30 min of every cart event of its session. About 40% of sessions add to
// the cart and about 30% of carts buy. The slopes are scaled by 1.3 and the
// intercept set to -2.9 so that a logistic regression on what a streaming
// feature stage computes at each add_to_cart and checkout_started (session
// event, view, search, add and remove counts, cart value, mean viewed price,
// session duration, is-checkout, the user's lifetime sessions and purchases,
// hours since the last purchase, device==mobile, referrer in {ads, email})
// reaches ROC AUC ≈ 0.78 for "purchase within 30 min": learnable, not trivial.
//
// # Drift scenarios
//
// From Config.ShiftAt on (by session start time) a scenario changes the world:
//
//   - ScenarioCovariate: prices x1.8, 40% of sessions come from social (the
//     other referrers scaled down), and 80% of sessions are on mobile. Users
//     keep their home device; a non-mobile user uses a phone for a session with
//     the probability that brings the session mix to 80% (Event.Device is the
//     device used in that session). The purchase rule is unchanged, so
//     fewer carts buy (≈ 21%: dearer carts, fewer desktops).
//   - ScenarioConcept: traffic is unchanged but the purchase rule becomes
//     sigmoid(-1.3 + 1.3*(-0.25*min(views,8) + 0.9*log1p(cart_value/50) +
//     0.9*[device mobile] - 0.6*[referrer email] + 0.5*min(user_purchases,3))
//     plus the same noise). Still about 30% of carts buy, but a model trained
//     before the shift ranks carts wrongly (AUC ≈ 0.4) until it is retrained
//     on shifted data (≈ 0.78 again).
//   - ScenarioBoth: both at once.
//
// # Determinism
//
// The same Config gives a byte-identical event sequence, however the time
// range is split into Advance calls: all randomness comes from one PCG source
// seeded with Config.Seed, consumed in session order. Ids are deterministic:
// sessions "s-<n>", events "e-<seed>-<n>-<k>" (the k-th event of session n),
// orders "o-<seed>-<n>". Timestamps are RFC 3339 UTC with milliseconds.
//
// A Simulator is not safe for concurrent use.
package storefront
