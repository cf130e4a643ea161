package app

import (
	"log/slog"

	"github.com/ThreeDotsLabs/watermill"
)

// wmLogger adapts slog for Watermill, keeping its per-message debug lines
// out of operators' logs.
func wmLogger(log *slog.Logger) watermill.LoggerAdapter {
	return watermill.NewSlogLoggerWithLevelMapping(log.With("component", "watermill"), map[slog.Level]slog.Level{
		slog.LevelInfo: slog.LevelDebug,
	})
}
