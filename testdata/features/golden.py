#!/usr/bin/env python3
"""Independent generator of the window engine's golden files (stdlib only).

Writes, into the directory given as the only argument (default: this one):
  defs.yaml       feature definitions covering every aggregation and window kind
  events.jsonl    a storefront stream in ARRIVAL order: shuffled within the
                  allowed lateness, plus some events delayed beyond it
  expected.jsonl  per arriving event: late or not, and the feature vector read
                  right after it (definition order)
  windows.jsonl   every window result the engine must emit (all windows are
                  closed at the end by advancing the watermark to +inf)

Nothing here shares code with the Go engine: every value is recomputed by
brute force from the list of accepted events, sorted by event time.
Semantics (docs/windows.md): watermark = max event time - lateness; an event
with ts < watermark is late and dropped; a vector read at trigger time t sees
every accepted event so far in the window containing t:
  lifetime  all events
  tumbling  [floor(t/S)*S, +S)
  hopping   the window containing t that ends first: start = (floor(t/H)-S/H+1)*H
  session   sessions = events closer than gap; the one with start <= t < last+gap
  event     the trigger event alone
A point_in_time feature (lifetime) reads only the events at or before t.
"""
import json
import math
import os
import random
import sys

LATENESS = 60_000
BASE = 1_795_000_000_000  # 2026-11-18, a whole minute
MIN = 60_000

TYPES = ["page_view", "product_view", "search", "add_to_cart", "remove_from_cart",
         "checkout_started", "purchase", "refund", "chargeback"]
ALL = TYPES

FEATURES = [
    # name, entity, events, aggregation, value, window, extra
    dict(name="u_count_life", entity="user", events=ALL, aggregation="count"),
    dict(name="u_amount_sum_life", entity="user", events=["purchase", "refund"], aggregation="sum", value="amount"),
    dict(name="u_price_max_tumble", entity="user", events=["product_view", "add_to_cart"], aggregation="max",
         value="price", window=dict(kind="tumbling", size=5 * MIN), default=-1),
    dict(name="u_price_min_hop", entity="user", events=["product_view", "add_to_cart"], aggregation="min",
         value="price", window=dict(kind="hopping", size=10 * MIN, hop=2 * MIN)),
    dict(name="u_cats_distinct_life", entity="user", events=["product_view"], aggregation="distinct_count",
         value="category", max_distinct=16),
    dict(name="u_tsl_purchase", entity="user", events=["purchase"], aggregation="time_since_last", unit="m",
         default=-1),
    dict(name="u_products_distinct_hop", entity="user", events=["product_view", "add_to_cart"],
         aggregation="distinct_count", value="product_id", window=dict(kind="hopping", size=6 * MIN, hop=3 * MIN),
         max_distinct=32),
    dict(name="u_events_session", entity="user", events=ALL, aggregation="count",
         window=dict(kind="session", gap=3 * MIN)),
    dict(name="u_line_total_session_sum", entity="user", events=["add_to_cart", "remove_from_cart"],
         aggregation="sum", value="line_total", window=dict(kind="session", gap=4 * MIN)),
    dict(name="s_mean_price_tumble", entity="session", events=["product_view"], aggregation="mean", value="price",
         window=dict(kind="tumbling", size=2 * MIN)),
    dict(name="s_last_price_hop", entity="session", events=["product_view", "add_to_cart", "remove_from_cart"],
         aggregation="last", value="price", window=dict(kind="hopping", size=4 * MIN, hop=1 * MIN)),
    dict(name="s_first_cart_session", entity="session", events=["add_to_cart"], aggregation="first",
         value="line_total", window=dict(kind="session", gap=2 * MIN)),
    dict(name="s_tsf", entity="session", events=ALL, aggregation="time_since_first", unit="s"),
    dict(name="s_tsl_tumble", entity="session", events=ALL, aggregation="time_since_last", unit="s",
         window=dict(kind="tumbling", size=3 * MIN)),
    dict(name="s_count_filtered", entity="session", events=["page_view", "product_view"], aggregation="count",
         filter={"device": ["mobile", "tablet"]}),
    dict(name="s_mobile_first", entity="session", events=ALL, aggregation="first",
         value={"field": "device", "equals": "mobile"}),
    dict(name="s_cart_delta_life", entity="session", events=["add_to_cart", "remove_from_cart"], aggregation="sum",
         value="cart_delta"),
    dict(name="s_checkout_event", entity="session", events=["checkout_started"], aggregation="count",
         window=dict(kind="event")),
    dict(name="s_cart_value_max_life", entity="session", events=["checkout_started"], aggregation="max",
         value="cart_value"),
    dict(name="s_items_min_session", entity="session", events=["checkout_started"], aggregation="min",
         value="items", window=dict(kind="session", gap=5 * MIN), default=-2),
    dict(name="s_count_hop_capped", entity="session", events=ALL, aggregation="count",
         window=dict(kind="hopping", size=3 * MIN, hop=1 * MIN), max_value=5),
    dict(name="s_referrer_ads_last_life", entity="session", events=ALL, aggregation="last",
         value={"field": "referrer", "equals": ["ads"]}),
    dict(name="s_query_distinct_tumble", entity="session", events=["search"], aggregation="distinct_count",
         value="query", window=dict(kind="tumbling", size=4 * MIN)),
    dict(name="u_purchases_pit", entity="user", events=["purchase"], aggregation="count", point_in_time=2),
    dict(name="u_tsl_purchase_pit", entity="user", events=["purchase"], aggregation="time_since_last", unit="m",
         default=-1, point_in_time=2),
    dict(name="u_amount_last_pit", entity="user", events=["purchase", "refund", "chargeback"], aggregation="last",
         value="amount", point_in_time=3),
    dict(name="s_price_max_pit", entity="session", events=["add_to_cart", "remove_from_cart"], aggregation="max",
         value="price", point_in_time=8),
    dict(name="s_amount_mean_filtered", entity="session", events=["purchase"], aggregation="mean", value="amount",
         filter={"currency": "EUR", "country": ["DE", "FR"]}, default=0),
]

PIT_EXCLUDED = {}  # point_in_time feature -> reads that left out later events

UNITS = {"ms": 1, "s": 1000, "m": MIN, "h": 3_600_000, "d": 86_400_000}


def dur(ms):
    if ms % MIN == 0:
        return "%dm" % (ms // MIN)
    return "%ds" % (ms // 1000)


def yaml_scalar(v):
    if isinstance(v, str):
        return json.dumps(v)
    return repr(v)


def write_yaml(path):
    out = ["# Generated by golden.py: do not edit.", "name: golden", "features:"]
    for f in FEATURES:
        out.append("  - name: %s" % f["name"])
        out.append("    entity: %s" % f["entity"])
        out.append("    events: [%s]" % ", ".join(f["events"]))
        out.append("    aggregation: %s" % f["aggregation"])
        v = f.get("value")
        if isinstance(v, str):
            out.append("    value: %s" % v)
        elif isinstance(v, dict):
            eq = v["equals"]
            eq = "[%s]" % ", ".join(eq) if isinstance(eq, list) else eq
            out.append("    value: {field: %s, equals: %s}" % (v["field"], eq))
        if "filter" in f:
            out.append("    filter:")
            for k, vals in f["filter"].items():
                vals = "[%s]" % ", ".join(vals) if isinstance(vals, list) else vals
                out.append("      %s: %s" % (k, vals))
        w = f.get("window")
        if w:
            parts = ["kind: %s" % w["kind"]]
            for k in ("size", "hop", "gap"):
                if k in w:
                    parts.append("%s: %s" % (k, dur(w[k])))
            out.append("    window: {%s}" % ", ".join(parts))
        for k in ("default", "unit", "max_value", "max_distinct", "point_in_time"):
            if k in f:
                out.append("    %s: %s" % (k, yaml_scalar(f[k])))
    with open(path, "w") as fh:
        fh.write("\n".join(out) + "\n")


def gen_events(rng):
    users = ["u1", "u2", "u3", "u4"]
    events = []
    used = set()
    n = 0
    for u in users:
        t = BASE + rng.randrange(0, 3 * MIN)
        for s in range(3):
            sid = "%s-s%d" % (u, s)
            device = rng.choice(["mobile", "desktop", "tablet"])
            referrer = rng.choice(["ads", "email", "direct", ""])
            country = rng.choice(["DE", "FR", "US"])
            for _ in range(rng.randrange(25, 60)):
                # gaps mostly under a minute, some long enough to split session windows
                t += rng.choice([rng.randrange(1000, 40_000)] * 6 + [rng.randrange(150_000, 400_000)])
                while t in used:
                    t += 1
                used.add(t)
                typ = rng.choices(TYPES, weights=[20, 25, 10, 12, 4, 4, 4, 1, 1])[0]
                n += 1
                e = {"event_id": "e%04d" % n, "type": typ, "ts_ms": t, "user_id": u, "session_id": sid,
                     "device": device, "referrer": referrer, "country": country}
                if typ in ("product_view", "add_to_cart", "remove_from_cart"):
                    e["product_id"] = "p%d" % rng.randrange(12)
                    e["category"] = "c%d" % rng.randrange(5)
                    e["price"] = round(rng.uniform(1, 200), 2)
                if typ in ("add_to_cart", "remove_from_cart"):
                    e["quantity"] = rng.randrange(1, 4)
                if typ == "search":
                    e["query"] = rng.choice(["shoes", "hat", "bag", "lamp", "", "sofa"])
                if typ == "checkout_started":
                    e["cart_value"] = round(rng.uniform(0, 500), 2)
                    e["items"] = rng.randrange(0, 8)
                if typ in ("purchase", "refund", "chargeback"):
                    e["order_id"] = "o%d" % n
                    e["amount"] = round(rng.uniform(5, 400), 2)
                    e["currency"] = rng.choice(["EUR", "USD"])
                events.append(e)
    return events


def arrival_order(rng, events):
    keyed = []
    for i, e in enumerate(events):
        delay = rng.randrange(0, 55_000)
        if rng.random() < 0.06:
            delay = rng.randrange(90_000, 400_000)  # beyond the allowed lateness: likely late
        keyed.append((e["ts_ms"] + delay, i, e))
    keyed.sort()
    return [e for _, _, e in keyed]


def value_of(f, e):
    v = f.get("value", "one")
    if isinstance(v, dict):
        eq = v["equals"] if isinstance(v["equals"], list) else [v["equals"]]
        return 1.0 if e.get(v["field"], "") in eq else 0.0
    if f["aggregation"] == "distinct_count":
        return e.get(v, "")
    if v == "one":
        return 1.0
    if v == "line_total":
        return e["price"] * e["quantity"]
    if v == "cart_delta":
        lt = e["price"] * e["quantity"]
        return -lt if e["type"] == "remove_from_cart" else lt
    return float(e[v])


def matches(f, e):
    if e["type"] not in f["events"]:
        return False
    for k, vals in f.get("filter", {}).items():
        vals = vals if isinstance(vals, list) else [vals]
        if e.get(k, "") not in vals:
            return False
    if f["aggregation"] == "distinct_count" and value_of(f, e) == "":
        return False
    return True


def aggregate(f, evs, t):
    """evs: matching events of one window; t: read time."""
    if not evs:
        return float(f.get("default", 0))
    evs = sorted(evs, key=lambda e: e["ts_ms"])
    agg = f["aggregation"]
    vals = [value_of(f, e) for e in evs]
    unit = UNITS[f.get("unit", "s")]
    if agg == "count":
        v = float(len(evs))
    elif agg == "sum":
        v = math.fsum(vals)
    elif agg == "mean":
        v = math.fsum(vals) / len(vals)
    elif agg == "min":
        v = min(vals)
    elif agg == "max":
        v = max(vals)
    elif agg == "distinct_count":
        v = float(len(set(vals)))
    elif agg == "last":
        v = vals[-1]
    elif agg == "first":
        v = vals[0]
    elif agg == "time_since_last":
        v = (t - evs[-1]["ts_ms"]) / unit
    elif agg == "time_since_first":
        v = (t - evs[0]["ts_ms"]) / unit
    else:
        raise ValueError(agg)
    if "max_value" in f:
        v = min(v, f["max_value"])
    return v


def sessions(evs, gap):
    evs = sorted(evs, key=lambda e: e["ts_ms"])
    out = []
    for e in evs:
        if out and e["ts_ms"] - out[-1][-1]["ts_ms"] < gap:
            out[-1].append(e)
        else:
            out.append([e])
    return out


def key_of(f, e):
    return e["user_id"] if f["entity"] == "user" else e["session_id"]


def read(f, accepted, trig):
    t = trig["ts_ms"]
    w = f.get("window", {"kind": "lifetime"})
    if w["kind"] == "event":
        return aggregate(f, [trig] if matches(f, trig) else [], t)
    key = key_of(f, trig)
    evs = [e for e in accepted if key_of(f, e) == key and matches(f, e)]
    if "point_in_time" in f:
        later = [e for e in evs if e["ts_ms"] > t]
        # The engine is exact while at most point_in_time applied events are
        # later than the read: the stream must stay within that.
        assert len(later) <= f["point_in_time"], (f["name"], trig["event_id"], len(later))
        if later:
            PIT_EXCLUDED[f["name"]] = PIT_EXCLUDED.get(f["name"], 0) + 1
        evs = [e for e in evs if e["ts_ms"] <= t]
    if w["kind"] == "tumbling":
        s = t // w["size"] * w["size"]
        evs = [e for e in evs if s <= e["ts_ms"] < s + w["size"]]
    elif w["kind"] == "hopping":
        s = (t // w["hop"] - w["size"] // w["hop"] + 1) * w["hop"]
        evs = [e for e in evs if s <= e["ts_ms"] < s + w["size"]]
    elif w["kind"] == "session":
        for sess in sessions(evs, w["gap"]):
            if sess[0]["ts_ms"] <= t < sess[-1]["ts_ms"] + w["gap"]:
                evs = sess
                break
        else:
            evs = []
    return aggregate(f, evs, t)


def windows(accepted):
    out = []
    for i, f in enumerate(FEATURES):
        w = f.get("window", {"kind": "lifetime"})
        if w["kind"] in ("lifetime", "event"):
            continue
        keys = sorted({key_of(f, e) for e in accepted if matches(f, e)})
        for key in keys:
            evs = [e for e in accepted if key_of(f, e) == key and matches(f, e)]
            spans = []
            if w["kind"] in ("tumbling", "hopping"):
                size, hop = w["size"], w.get("hop", w["size"])
                starts = set()
                for e in evs:
                    last = e["ts_ms"] // hop * hop
                    s = last - size + hop
                    while s <= last:
                        if s <= e["ts_ms"] < s + size:
                            starts.add(s)
                        s += hop
                for s in sorted(starts):
                    spans.append((s, s + size, [e for e in evs if s <= e["ts_ms"] < s + size]))
            else:
                for sess in sessions(evs, w["gap"]):
                    spans.append((sess[0]["ts_ms"], sess[-1]["ts_ms"] + w["gap"], sess))
            for s, end, wevs in spans:
                out.append({"feature": f["name"], "key": key, "start": s, "end": end,
                            "events": len(wevs), "value": aggregate(f, wevs, end)})
    out.sort(key=lambda r: (r["feature"], r["key"], r["start"]))
    return out


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    rng = random.Random(20261118)
    write_yaml(os.path.join(d, "defs.yaml"))
    stream = arrival_order(rng, gen_events(rng))
    accepted, expected = [], []
    wm, max_ts, late = -(2 ** 63), -(2 ** 63), 0
    for e in stream:
        if e["ts_ms"] < wm:
            late += 1
            expected.append({"event_id": e["event_id"], "late": True})
            continue
        max_ts = max(max_ts, e["ts_ms"])
        wm = max(wm, max_ts - LATENESS)
        accepted.append(e)
        expected.append({"event_id": e["event_id"], "late": False,
                         "vector": [read(f, accepted, e) for f in FEATURES]})
    with open(os.path.join(d, "events.jsonl"), "w") as fh:
        for e in stream:
            fh.write(json.dumps(e, sort_keys=True) + "\n")
    with open(os.path.join(d, "expected.jsonl"), "w") as fh:
        for r in expected:
            fh.write(json.dumps(r) + "\n")
    with open(os.path.join(d, "windows.jsonl"), "w") as fh:
        for r in windows(accepted):
            fh.write(json.dumps(r, sort_keys=True) + "\n")
    for f in FEATURES:
        # Every point_in_time feature must have reads where it matters.
        assert "point_in_time" not in f or PIT_EXCLUDED.get(f["name"], 0) > 0, f["name"]
    print("golden: reads that left out later events: %s" % PIT_EXCLUDED, file=sys.stderr)
    print("golden: %d events, %d late, %d windows, %d features" % (
        len(stream), late, len(windows(accepted)), len(FEATURES)), file=sys.stderr)


if __name__ == "__main__":
    main()
