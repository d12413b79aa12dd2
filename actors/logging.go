package actors

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/asynkron/protoactor-go/actor"
)

// minLevelHandler drops records below min. protoactor-go logs routine
// lifecycle events at info; only its warnings and errors interest an operator.
type minLevelHandler struct {
	slog.Handler
	min slog.Level
}

func (h minLevelHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= h.min && h.Handler.Enabled(ctx, l)
}

func (h minLevelHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return minLevelHandler{h.Handler.WithAttrs(as), h.min}
}

func (h minLevelHandler) WithGroup(name string) slog.Handler {
	return minLevelHandler{h.Handler.WithGroup(name), h.min}
}

// loggingStrategy logs an actor's failure, with what it was handling,
// before the wrapped strategy restarts or stops it.
type loggingStrategy struct {
	actor.SupervisorStrategy
	log *slog.Logger
}

func (s loggingStrategy) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID,
	rs *actor.RestartStatistics, reason any, message any) {
	s.log.Error("actor failed", "actor", child.Id, "reason", reason, "message", fmt.Sprintf("%T", actor.UnwrapEnvelopeMessage(message)))
	s.SupervisorStrategy.HandleFailure(system, sup, child, rs, reason, message)
}

// participantSupervisor stops a participant that panics: a peer connection
// cannot be restarted from a snapshot. It is the strategy of the guardian
// of every participant; the room, which watches its members, learns of it
// through Terminated and removes that participant alone.
func participantSupervisor(log *slog.Logger) actor.SupervisorStrategy {
	return loggingStrategy{
		SupervisorStrategy: actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.StopDirective }),
		log:                log,
	}
}
