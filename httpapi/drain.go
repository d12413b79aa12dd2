package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/troupe-media/troupe/actors"
)

// drainNode serves POST /api/v1/cluster/nodes/{id}/drain: the node stops
// taking new rooms and joins, lets its sessions go on for its drain
// timeout, tells its participants to reconnect and stops. A call for
// another node is forwarded to it, as a room's calls are to their owner.
// It answers 202 once the drain has begun.
func (s *Server) drainNode(c *gin.Context) error {
	id := c.Param("id")
	var nodes []Node
	if s.cfg.Nodes != nil {
		var err error
		if nodes, err = s.cfg.Nodes(c.Request.Context()); err != nil {
			return err
		}
	}
	var found *Node
	for i := range nodes {
		if nodes[i].ID == id {
			found = &nodes[i]
			break
		}
	}
	switch {
	case found == nil:
		return newAPIError(http.StatusNotFound, codeNodeNotFound, "no such node in the cluster")
	case !found.Self:
		// abort forwards it to the node (forward.go); a call forwarded
		// once already is not passed on again.
		return &actors.NotOwnerError{Owner: id}
	case s.cfg.Drain == nil:
		return newAPIError(http.StatusServiceUnavailable, codeNotReady, "this server cannot be drained through the API")
	}
	s.cfg.Drain()
	out := nodeOf(*found)
	out.Draining = true
	writeJSON(c, http.StatusAccepted, out)
	return nil
}
