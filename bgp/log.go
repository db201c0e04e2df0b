package bgp

import (
	"context"
	"log/slog"
)

// quietLogger is the logger handed to gobgp. gobgp logs every FSM step and
// more at Info and Debug; the director wants its warnings and errors (a
// failed MD5 setsockopt, a BFD expiry, a notification) and nothing per
// route, so everything below Warn is dropped.
func quietLogger(l *slog.Logger) *slog.Logger {
	return slog.New(minLevel{h: l.Handler(), min: slog.LevelWarn}).With("component", "gobgp")
}

type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}

func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }

func (m minLevel) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(as), min: m.min}
}

func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h: m.h.WithGroup(name), min: m.min}
}
