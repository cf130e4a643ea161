package trainers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/driftline/driftline/schemas"
)

// Version numbers and idempotency keys across trainer replicas.
//
// Several trainer replicas share one consumer group; a request is normally
// handled by one of them, but a training that outlives the group's
// rebalance timeout, or a replica cut off from the broker, lets a second
// one handle the same or a concurrent request. Kafka has no
// compare-and-set, so the registry topic itself (one partition: one order
// every replica reads) decides: before training, a replica writes a
// reservation of the number it means to use — a move of the "reserved"
// alias to that number, with the request's idempotency key and a unique
// owner id — and reads the registry back through its ModelFeed. The first
// reservation of a number in the log wins it; a loser reserves the next
// number. The first winning reservation of an idempotency key that is
// younger than the claim TTL holds the key: another replica that gets the
// same request waits until the holder's version appears (then the request
// is a duplicate) or the claim expires (the holder died; it trains
// itself). A replica that won a number but not the key leaves a gap in
// the numbers: numbers are unique, not always consecutive.
//
// Reservations are alias moves (schemas.AliasReserved, Seq = the number)
// so every reader of the registry (feeds, the sink, `driftline models
// history --alias reserved`) already understands them; two reservations of
// one number share a key, and compaction keeps the later, which is moot
// once the number's version record exists.

// reservationWait bounds how long Reserve waits to read its own
// reservation back.
const reservationWait = 15 * time.Second

// Reserve writes a reservation of the next free version number of model
// for the retrain request key, on behalf of owner (a replica id), and
// returns the number once the registry shows the reservation won it,
// trying the next number after a loss. It also returns the reservation's
// unique id.
func (r *Registry) Reserve(ctx context.Context, model, key, owner string) (version int, id string, err error) {
	for range 100 {
		r.mu.Lock()
		r.attempt++
		id = owner + "/" + strconv.Itoa(r.attempt)
		prev := max(r.feed.LatestVersion(model), r.lastReserved[model])
		for _, m := range r.feed.AliasHistory(model, schemas.AliasReserved) {
			prev = max(prev, m.Version)
		}
		n := prev + 1
		r.lastReserved[model] = n
		r.mu.Unlock()
		move := schemas.AliasMove{
			Model: model, Alias: schemas.AliasReserved, Version: n, Previous: prev, Seq: n, At: time.Now().UTC(),
			Reason: "version number reserved for retrain request " + key, Owner: id, RetrainOf: key,
		}
		rec := schemas.RegistryRecord{Kind: schemas.RegistryAlias, Alias: &move}
		if err := publishJSON(r.pub, r.topic, schemas.AliasMoveKey(model, schemas.AliasReserved, n), rec); err != nil {
			return 0, "", fmt.Errorf("cannot reserve %s/v%d: %w", model, n, err)
		}
		first, err := r.readBack(ctx, model, n, id)
		if err != nil {
			return 0, "", err
		}
		if first.Owner == id {
			return n, id, nil
		}
	}
	return 0, "", fmt.Errorf("cannot reserve a version number of %s: lost 100 reservations in a row", model)
}

// readBack waits until the feed has read the reservation id of number n
// and returns the first reservation of n in the log.
func (r *Registry) readBack(ctx context.Context, model string, n int, id string) (schemas.AliasMove, error) {
	deadline := time.Now().Add(reservationWait)
	for {
		var first *schemas.AliasMove
		hist := r.feed.AliasHistory(model, schemas.AliasReserved)
		for i := range hist {
			if hist[i].Version == n && first == nil {
				first = &hist[i]
			}
			if hist[i].Owner == id {
				return *first, nil
			}
		}
		if time.Now().After(deadline) {
			return schemas.AliasMove{}, fmt.Errorf("cannot reserve %s/v%d: the registry did not show the reservation within %s", model, n, reservationWait)
		}
		select {
		case <-ctx.Done():
			return schemas.AliasMove{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// KeyHolder returns the reservation that holds the retrain request key:
// the first reservation in the log that won its number, is for key and is
// younger than ttl. ok is false when none does.
func (r *Registry) KeyHolder(model, key string, ttl time.Duration) (holder schemas.AliasMove, ok bool) {
	won := map[int]bool{}
	for _, m := range r.feed.AliasHistory(model, schemas.AliasReserved) {
		if won[m.Version] {
			continue // lost its number: holds nothing
		}
		won[m.Version] = true
		if m.RetrainOf == key && time.Since(m.At) < ttl {
			return m, true
		}
	}
	return schemas.AliasMove{}, false
}

// ownedBy reports whether a reservation id was issued to owner.
func ownedBy(id, owner string) bool { return strings.HasPrefix(id, owner+"/") }
