package httpapi

import (
	"context"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// Node is a Troupe node as GET /api/v1/cluster/nodes lists it.
type Node struct {
	ID           string
	AdvertiseURL string
	StartedAt    time.Time
	// Rooms, Participants and Tracks are what the node runs: room actors,
	// participants connected, tracks forwarded (one per subscriber per
	// track). Load is the one number placement compares.
	Rooms, Participants, Tracks, Load int
	// Self is the node answering.
	Self bool
}

// NodeLister lists the nodes of the cluster: those holding a lease, or the
// one node of a single-node server.
type NodeLister func(ctx context.Context) ([]Node, error)

type nodeJSON struct {
	ID           string    `json:"id"`
	AdvertiseURL string    `json:"advertise_url"`
	StartedAt    time.Time `json:"started_at"`
	Rooms        int       `json:"rooms"`
	Participants int       `json:"participants"`
	Tracks       int       `json:"tracks"`
	Load         int       `json:"load"`
	Self         bool      `json:"self"`
}

type nodeListJSON struct {
	Nodes []nodeJSON `json:"nodes"`
}

func (s *Server) listNodes(c *gin.Context) error {
	out := nodeListJSON{Nodes: []nodeJSON{}}
	if s.cfg.Nodes != nil {
		nodes, err := s.cfg.Nodes(c.Request.Context())
		if err != nil {
			return err
		}
		for _, n := range nodes {
			out.Nodes = append(out.Nodes, nodeJSON{ID: n.ID, AdvertiseURL: n.AdvertiseURL, StartedAt: n.StartedAt.UTC(),
				Rooms: n.Rooms, Participants: n.Participants, Tracks: n.Tracks, Load: n.Load, Self: n.Self})
		}
	}
	writeJSON(c, http.StatusOK, out)
	return nil
}
