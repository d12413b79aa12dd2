package httpapi

import (
	"errors"
	"net/http"
	"sync"

	"github.com/gin-gonic/gin"
)

// NotReadyError is an error of Config.Ready whose Reason /readyz may show
// to anyone who asks: a short phrase such as "shutting down", never a path
// or an address. Other errors of Config.Ready are only logged.
type NotReadyError struct{ Reason string }

func (e *NotReadyError) Error() string { return e.Reason }

// readiness remembers what /readyz last answered, so that a probe every
// few seconds logs a state change once rather than a line per probe.
type readiness struct {
	mu   sync.Mutex // guards last
	last string     // "" while ready, else the error /readyz last reported
}

// changed records state, "" for ready, and says whether it differs from the
// one recorded before.
func (r *readiness) changed(state string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last == state {
		return false
	}
	r.last = state
	return true
}

func (s *Server) readyz(c *gin.Context) {
	var err error
	if s.cfg.Ready != nil {
		err = s.cfg.Ready(c.Request.Context())
	}
	if err == nil {
		if s.ready.changed("") {
			s.log.Info("ready")
		}
		c.JSON(http.StatusOK, gin.H{"status": "ready"})
		return
	}
	if s.ready.changed(err.Error()) {
		s.log.Warn("not ready", "err", err)
	} else {
		s.log.Debug("not ready", "err", err)
	}
	message := "not ready"
	if nr, ok := errors.AsType[*NotReadyError](err); ok {
		message += ": " + nr.Reason
	}
	s.abort(c, newAPIError(http.StatusServiceUnavailable, codeNotReady, message))
}
