package schemas

import "errors"

// ErrInvalid matches every rejection of a storefront record with errors.Is:
// the record is bad and goes to the dead-letter topic; retrying cannot help.
// Use errors.As with a *ValidationError (or FieldReason) to get the field
// and the reason for the driftline.field and driftline.reason headers.
var ErrInvalid = errors.New("invalid storefront record")

// ValidationError says why a storefront record was rejected. Field names the
// JSON field that broke a rule ("price", "ts"), or "record" when the record
// as a whole is unusable (too large, not JSON, not an object). Reason is a
// sentence for humans and the DLQ header, e.g. "must be >= 0, got -3".
type ValidationError struct {
	Field  string
	Reason string
}

// Error returns "field: reason", e.g. "price: must be >= 0, got -3".
func (e *ValidationError) Error() string { return e.Field + ": " + e.Reason }

// Is reports whether target is ErrInvalid, so callers can tell a bad record
// from an I/O error without knowing the concrete type.
func (e *ValidationError) Is(target error) bool { return target == ErrInvalid }

// FieldReason returns the field and reason of the first *ValidationError in
// err's chain; ok is false when err is not a rejection of a record.
func FieldReason(err error) (field, reason string, ok bool) {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return "", "", false
	}
	return ve.Field, ve.Reason, true
}

// invalid builds a rejection. Kept tiny so the valid path never touches it.
func invalid(field, reason string) *ValidationError {
	return &ValidationError{Field: field, Reason: reason}
}
