package trainers

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"

	"github.com/driftline/driftline/consumers"
	"github.com/driftline/driftline/schemas"
)

// ErrNoRollback is returned by Rollback when the champion's history has no
// earlier champion to go back to.
var ErrNoRollback = errors.New("no previous champion to roll back to")

// Registry writes the registry topic: version records under
// "<model>/v<N>", and every alias move under its own key
// "<model>@<alias>#<seq>~<writer>" (schemas.AliasMoveKey plus the writer's
// id), so the compacted topic keeps the whole history of every alias and a
// rollback is one record. It reads the registry through a ModelFeed, which
// must be running.
//
// Seq is the writer's proposal (one more than the highest it has read or
// written); two writers moving the same alias at the same moment (a gate
// promotion and a probation rollback on two replicas, an operator's
// `driftline models promote`) can both propose the same seq. The writer id
// (random per Registry) in the key keeps their records apart, so
// compaction never drops one of them; the order of the history, and so the
// alias's current version, is the registry topic's log order (one
// partition: every reader reads the same order), never the seq. Readers
// must therefore not treat Seq as unique.
type Registry struct {
	feed   *consumers.ModelFeed
	pub    message.Publisher
	topic  string
	writer string // unique per Registry: the suffix of its alias move keys

	mu           sync.Mutex
	lastSeq      map[string]int               // "<model>@<alias>" -> highest seq written here
	lastMoved    map[string]schemas.AliasMove // "<model>@<alias>" -> the last move written here
	published    map[string]bool              // version keys written here (the feed may not have read them yet)
	lastReserved map[string]int               // model -> highest version number reserved here
	attempt      int                          // reservations written here, for their ids
}

// NewRegistry returns a registry writer on topic.
func NewRegistry(feed *consumers.ModelFeed, pub message.Publisher, topic string) *Registry {
	return &Registry{feed: feed, pub: pub, topic: topic, writer: newWriterID(), lastSeq: map[string]int{}, lastMoved: map[string]schemas.AliasMove{}, published: map[string]bool{}, lastReserved: map[string]int{}}
}

// newWriterID returns 12 random hex digits: two writers picking the same id
// (and the same seq of the same alias) is a 1 in 2^48 chance.
func newWriterID() string {
	var b [6]byte
	if _, err := rand.Read(b[:]); err != nil {
		// crypto/rand does not fail on the platforms Go supports; keep
		// the writer distinct by time if it ever does.
		return strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return hex.EncodeToString(b[:])
}

// aliasMoveKey is the registry key of a move this registry writes: the
// seq-th move of the alias as schemas.AliasMoveKey names it, plus the
// writer id, so two writers proposing the same seq write two keys.
func (r *Registry) aliasMoveKey(model, alias string, seq int) string {
	return schemas.AliasMoveKey(model, alias, seq) + "~" + r.writer
}

// Feed is the feed the registry reads.
func (r *Registry) Feed() *consumers.ModelFeed { return r.feed }

// PublishVersion writes a version record.
func (r *Registry) PublishVersion(v *schemas.ModelVersion) error {
	rec := schemas.RegistryRecord{Kind: schemas.RegistryVersion, Version: v}
	if err := publishJSON(r.pub, r.topic, schemas.VersionKey(v.Model, v.Version), rec); err != nil {
		return fmt.Errorf("cannot publish %s/v%d: %w", v.Model, v.Version, err)
	}
	r.mu.Lock()
	r.published[schemas.VersionKey(v.Model, v.Version)] = true
	r.mu.Unlock()
	return nil
}

// MoveAlias points a model's alias at version (0 clears it) with one
// record, and returns the move written. Previous is where the alias
// pointed, per the feed.
//
// A champion move also moves the retired alias, as a second record with
// the same decision, reason and evidence: a promotion (any decision but a
// rollback) retires the champion it replaces (retired -> that version); a
// rollback (DecisionRollback, DecisionRolledBack) clears retired, since
// the version it pointed at may be serving again.
func (r *Registry) MoveAlias(model, alias string, version int, decision, reason string, evidence map[string]float64) (schemas.AliasMove, error) {
	move, err := r.moveAlias(model, alias, version, decision, reason, evidence)
	if err != nil || alias != schemas.AliasChampion || move.Previous == version {
		return move, err
	}
	retired := 0
	if decision != schemas.DecisionRollback && decision != schemas.DecisionRolledBack {
		retired = move.Previous
	}
	if retired == r.current(model, schemas.AliasRetired) {
		return move, nil
	}
	if _, err := r.moveAlias(model, schemas.AliasRetired, retired, decision, reason, evidence); err != nil {
		return move, err
	}
	return move, nil
}

func (r *Registry) moveAlias(model, alias string, version int, decision, reason string, evidence map[string]float64) (schemas.AliasMove, error) {
	r.mu.Lock()
	mine := r.published[schemas.VersionKey(model, version)]
	r.mu.Unlock()
	if version != 0 && !mine && r.feed.Version(model, version) == nil {
		return schemas.AliasMove{}, fmt.Errorf("cannot move %s of %s to v%d: the registry has no such version", alias, model, version)
	}
	prev := r.current(model, alias)
	key := schemas.AliasKey(model, alias)
	r.mu.Lock()
	seq := max(r.feed.NextAliasSeq(model, alias), r.lastSeq[key]+1)
	r.lastSeq[key] = seq
	r.mu.Unlock()
	move := schemas.AliasMove{
		Model: model, Alias: alias, Version: version, Previous: prev, Reason: reason, At: time.Now().UTC(),
		Seq: seq, Decision: decision, Evidence: evidence,
	}
	rec := schemas.RegistryRecord{Kind: schemas.RegistryAlias, Alias: &move}
	if err := publishJSON(r.pub, r.topic, r.aliasMoveKey(model, alias, seq), rec); err != nil {
		return schemas.AliasMove{}, fmt.Errorf("cannot move %s of %s to v%d: %w", alias, model, version, err)
	}
	r.mu.Lock()
	r.lastMoved[key] = move
	r.mu.Unlock()
	return move, nil
}

// current is the alias's version as this registry knows it: the feed's,
// or the last move this registry wrote while the feed has not read it yet
// (a champion move's retired move, read back a moment later).
func (r *Registry) current(model, alias string) int {
	cur := 0
	if v := r.feed.Alias(model, alias); v != nil {
		cur = v.Version
	}
	next := r.feed.NextAliasSeq(model, alias)
	r.mu.Lock()
	defer r.mu.Unlock()
	if m, ok := r.lastMoved[schemas.AliasKey(model, alias)]; ok && m.Seq >= next {
		cur = m.Version
	}
	return cur
}

// PreviousChampion is the version a rollback returns to: the champion
// before the current one, where history is read as a stack (a move pushes
// its version; a rollback pops the version it rolled back from), so
// repeated rollbacks walk back through the champions, never forward. 0 if
// there is none.
func PreviousChampion(history []schemas.AliasMove) int {
	var stack []int
	for _, m := range history {
		switch {
		case m.Decision == schemas.DecisionRollback || m.Decision == schemas.DecisionRolledBack:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			if len(stack) == 0 || stack[len(stack)-1] != m.Version {
				stack = append(stack, m.Version)
			}
		case len(stack) == 0 || stack[len(stack)-1] != m.Version:
			stack = append(stack, m.Version)
		}
	}
	if len(stack) < 2 {
		return 0
	}
	return stack[len(stack)-2]
}

// Rollback moves the champion back to the previous champion
// (PreviousChampion) in one alias record with the given decision
// (schemas.DecisionRollback for an operator, DecisionRolledBack for
// probation).
func (r *Registry) Rollback(model, decision, reason string, evidence map[string]float64) (schemas.AliasMove, error) {
	to := PreviousChampion(r.feed.AliasHistory(model, schemas.AliasChampion))
	if to == 0 {
		return schemas.AliasMove{}, fmt.Errorf("cannot roll back %s: %w", model, ErrNoRollback)
	}
	return r.MoveAlias(model, schemas.AliasChampion, to, decision, reason, evidence)
}
