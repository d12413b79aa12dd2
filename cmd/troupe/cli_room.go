package main

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
)

// apiCommand is a group of API commands (`troupe room`...) sharing the
// connection flags.
func apiCommand(use, short string, f *apiFlags, subs ...func(*apiFlags) *cobra.Command) *cobra.Command {
	cmd := &cobra.Command{
		Use:   use,
		Short: short,
		Long: short + `.

The server is --url (or TROUPE_URL), else where serve listens by its own
configuration: TROUPE_HTTP_ADDR, else http_addr (and tls_cert) of --config,
else ` + defaultServerURL + `. The token is
--token (or TROUPE_TOKEN), else an admin token minted for the call from the
local key (<data-dir>/keys.json, or --api-key and --api-secret). Output is
a table, or the API's JSON with --json. Exit status: 0 done, 1 the API or
the connection failed, 2 the command line is wrong.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	f.bind(cmd.PersistentFlags())
	for _, sub := range subs {
		cmd.AddCommand(sub(f))
	}
	return cmd
}

// apiCall runs an API command: one call, its answer printed.
func apiCall(cmd *cobra.Command, f *apiFlags, method, path string, body any, t func(v any) table) error {
	c, err := f.client(cmd)
	if err != nil {
		return err
	}
	out, err := c.call(cmd.Context(), method, path, body)
	if err != nil {
		return err
	}
	return output(cmd.OutOrStdout(), f.json, out, t)
}

// callCmd is a command of one call without a body, to the path its nargs
// arguments make, whose answer t prints.
func callCmd(f *apiFlags, use, short string, nargs int, method string, path func(args []string) string, t func(v any) table) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(nargs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return apiCall(cmd, f, method, path(args), nil, t)
		}}
}

// doneCmd is a command of one call without a body or an answer, to the
// path its nargs arguments make; it prints what it did (says).
func doneCmd(f *apiFlags, use, short string, nargs int, method string, path func(args []string) string, says func(args []string) string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(nargs),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := apiCall(cmd, f, method, path(args), nil, nil); err != nil {
				return err
			}
			done(cmd, f, "%s", says(args))
			return nil
		}}
}

// pathOf makes the path of the object a command's first argument names
// under /api/v1/{kind}/, and below it.
func pathOf(kind, below string) func(a []string) string {
	return func(a []string) string { return "/api/v1/" + kind + "/" + seg(a[0]) + below }
}

// done prints what a command with no answer body did, unless --json.
func done(cmd *cobra.Command, f *apiFlags, format string, args ...any) {
	if !f.json {
		fmt.Fprintf(cmd.OutOrStdout(), format+"\n", args...)
	}
}

func seg(s string) string { return url.PathEscape(s) }

// pageQuery is the query of a listing: --limit, --offset and filters.
func pageQuery(limit, offset int, filters ...string) string {
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if offset > 0 {
		q.Set("offset", strconv.Itoa(offset))
	}
	for i := 0; i+1 < len(filters); i += 2 {
		if filters[i+1] != "" {
			q.Set(filters[i], filters[i+1])
		}
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + q.Encode()
}

var roomColumns = listTable("rooms",
	field("ID", "id"), field("NAME", "name"), field("STATUS", "status"),
	field("PARTICIPANTS", "participant_count"), field("SESSION", "active_session_id"),
	field("NODE", "node_id"), field("PRIVACY", "privacy"), field("URL", "url"), field("CREATED", "created_at"))

func newRoomCmd() *cobra.Command {
	return apiCommand("room", "List, create, change and end rooms", &apiFlags{},
		roomListCmd, roomCreateCmd, roomGetCmd, roomUpdateCmd, roomEndCmd, roomDeleteCmd)
}

func roomListCmd(f *apiFlags) *cobra.Command {
	var limit, offset int
	var status string
	cmd := &cobra.Command{Use: "list", Short: "List rooms", Args: cobra.NoArgs}
	cmd.Flags().IntVar(&limit, "limit", 0, "rooms per page, 1 to 100 (default: the server's, 20)")
	cmd.Flags().IntVar(&offset, "offset", 0, "rooms to skip")
	statusFlag := enumFlag{"status", queryEnum("/api/v1/rooms", "status")}
	statusFlag.bind(cmd, &status, "", "only rooms of this status")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if limit < 0 || offset < 0 {
			return usageErrorf("--limit and --offset must not be negative")
		}
		if err := statusFlag.check(cmd, status); err != nil {
			return err
		}
		return apiCall(cmd, f, http.MethodGet, "/api/v1/rooms"+pageQuery(limit, offset, "status", status), nil, roomColumns)
	}
	return cmd
}

// roomSettings are the room fields the create and update commands set;
// only the flags given are sent.
type roomSettings struct {
	id, name, displayName string
	privacy, defaultRole  string
	maxParticipants       int
	emptyTimeout          int
	locked, recording     bool
	// privacyFlag and roleFlag list what the API takes.
	privacyFlag, roleFlag enumFlag
}

func (s *roomSettings) bind(cmd *cobra.Command, withID bool) {
	f := cmd.Flags()
	if withID {
		f.StringVar(&s.id, "id", "", "the room's id (default: one the server makes)")
	}
	f.StringVar(&s.name, "name", "", "the room's name")
	f.StringVar(&s.displayName, "display-name", "", "the name shown to participants")
	schema := "PatchRoomRequest"
	if withID {
		schema = "CreateRoomRequest"
	}
	s.privacyFlag = enumFlag{"privacy", schemaEnum(schema, "privacy")}
	s.roleFlag = enumFlag{"default-role", schemaEnum(schema, "default_role")}
	s.privacyFlag.bind(cmd, &s.privacy, "", "whether the room's link alone lets people join: private needs a join token, public does not")
	s.roleFlag.bind(cmd, &s.defaultRole, "", "the role of those who join a public room by its link")
	f.IntVar(&s.maxParticipants, "max-participants", 0, "how many may be in the room at once")
	f.IntVar(&s.emptyTimeout, "empty-timeout", 0, "seconds an empty room waits before its session ends")
	f.BoolVar(&s.locked, "locked", false, "lock the room: only moderators join (--locked=false unlocks)")
	f.BoolVar(&s.recording, "recording", false, "allow recording the room (--recording=false forbids it)")
}

// check refuses values of the flags given that the API would refuse.
func (s *roomSettings) check(cmd *cobra.Command) error {
	if err := s.privacyFlag.check(cmd, s.privacy); err != nil {
		return err
	}
	return s.roleFlag.check(cmd, s.defaultRole)
}

// body is the JSON of the flags given; nil if none was.
func (s *roomSettings) body(cmd *cobra.Command) map[string]any {
	body, config := map[string]any{}, map[string]any{}
	for _, set := range []struct {
		flag string
		into map[string]any
		key  string
		v    any
	}{
		{"id", body, "id", s.id},
		{"name", body, "name", s.name},
		{"display-name", body, "display_name", s.displayName},
		{"privacy", body, "privacy", s.privacy},
		{"default-role", body, "default_role", s.defaultRole},
		{"max-participants", config, "max_participants", s.maxParticipants},
		{"empty-timeout", config, "empty_timeout", s.emptyTimeout},
		{"locked", config, "locked", s.locked},
		{"recording", config, "recording_enabled", s.recording},
	} {
		if cmd.Flags().Changed(set.flag) {
			set.into[set.key] = set.v
		}
	}
	if len(config) > 0 {
		body["config"] = config
	}
	if len(body) == 0 {
		return nil
	}
	return body
}

func roomCreateCmd(f *apiFlags) *cobra.Command {
	var s roomSettings
	cmd := &cobra.Command{Use: "create --name NAME", Short: "Create a room", Args: cobra.NoArgs}
	s.bind(cmd, true)
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if !cmd.Flags().Changed("name") {
			return usageErrorf("a room needs --name")
		}
		if err := s.check(cmd); err != nil {
			return err
		}
		return apiCall(cmd, f, http.MethodPost, "/api/v1/rooms", s.body(cmd), objectTable)
	}
	return cmd
}

func roomGetCmd(f *apiFlags) *cobra.Command {
	return callCmd(f, "get ROOM", "Show a room", 1, http.MethodGet,
		pathOf("rooms", ""), objectTable)
}

func roomUpdateCmd(f *apiFlags) *cobra.Command {
	var s roomSettings
	cmd := &cobra.Command{Use: "update ROOM [--name ...] [--locked] ...", Short: "Change a room's settings (those given)", Args: cobra.ExactArgs(1)}
	s.bind(cmd, false)
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		body := s.body(cmd)
		if body == nil {
			return usageErrorf("nothing to change: give --name, --display-name, --privacy, --default-role, --max-participants, --empty-timeout, --locked or --recording")
		}
		if err := s.check(cmd); err != nil {
			return err
		}
		return apiCall(cmd, f, http.MethodPatch, "/api/v1/rooms/"+seg(args[0]), body, objectTable)
	}
	return cmd
}

func roomEndCmd(f *apiFlags) *cobra.Command {
	return callCmd(f, "end ROOM", "End a room: everyone leaves and it refuses joins", 1, http.MethodPost,
		pathOf("rooms", "/end"), objectTable)
}

func roomDeleteCmd(f *apiFlags) *cobra.Command {
	return doneCmd(f, "delete ROOM", "Delete a room (its sessions' history stays)", 1, http.MethodDelete, pathOf("rooms", ""),
		func(a []string) string { return "deleted room " + a[0] })
}

func newParticipantCmd() *cobra.Command {
	return apiCommand("participant", "List, kick and mute the participants of a room", &apiFlags{},
		participantListCmd, participantKickCmd, participantMuteCmd)
}

func participantListCmd(f *apiFlags) *cobra.Command {
	tracks := column{"TRACKS", func(p map[string]any) string {
		list, _ := p["tracks"].([]any)
		var parts []string
		for _, t := range list {
			t, _ := t.(map[string]any)
			s := cellOf(t["codec"]) // a MIME type: video/VP8
			if t["muted"] == true {
				s += " (muted)"
			}
			parts = append(parts, s)
		}
		if len(parts) == 0 {
			return "-"
		}
		return strings.Join(parts, ", ")
	}}
	return callCmd(f, "list ROOM", "List the participants in a room now", 1, http.MethodGet,
		pathOf("rooms", "/participants"),
		listTable("", field("ID", "id"), field("IDENTITY", "identity"), field("NAME", "name"),
			field("ROLE", "role"), field("JOINED", "joined_at"), tracks))
}

func participantKickCmd(f *apiFlags) *cobra.Command {
	return doneCmd(f, "kick ROOM PARTICIPANT", "Disconnect a participant", 2, http.MethodDelete,
		func(a []string) string { return "/api/v1/rooms/" + seg(a[0]) + "/participants/" + seg(a[1]) },
		func(a []string) string { return "kicked " + a[1] + " from room " + a[0] })
}

func participantMuteCmd(f *apiFlags) *cobra.Command {
	var kind string
	var unmute bool
	cmd := &cobra.Command{Use: "mute ROOM PARTICIPANT --kind audio|video", Short: "Mute (or --unmute) a participant's audio or video", Args: cobra.ExactArgs(2)}
	kindFlag := enumFlag{"kind", schemaEnum("MuteRequest", "kind")}
	kindFlag.bind(cmd, &kind, "audio", "the kind of media to mute")
	cmd.Flags().BoolVar(&unmute, "unmute", false, "unmute instead")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if err := kindFlag.check(cmd, kind); err != nil {
			return err
		}
		body := map[string]any{"kind": kind, "muted": !unmute}
		if err := apiCall(cmd, f, http.MethodPost, "/api/v1/rooms/"+seg(args[0])+"/participants/"+seg(args[1])+"/mute", body, nil); err != nil {
			return err
		}
		verb := "muted"
		if unmute {
			verb = "unmuted"
		}
		done(cmd, f, "%s the %s of %s in room %s", verb, kind, args[1], args[0])
		return nil
	}
	return cmd
}

func newSessionCmd() *cobra.Command {
	return apiCommand("session", "List and end sessions, show their participants and media figures", &apiFlags{},
		sessionListCmd, sessionGetCmd, sessionParticipantsCmd, sessionStatsCmd, sessionEndCmd)
}

func sessionListCmd(f *apiFlags) *cobra.Command {
	var limit, offset int
	var room, status string
	cmd := &cobra.Command{Use: "list", Short: "List sessions, newest first", Args: cobra.NoArgs}
	cmd.Flags().IntVar(&limit, "limit", 0, "sessions per page, 1 to 100 (default: the server's, 20)")
	cmd.Flags().IntVar(&offset, "offset", 0, "sessions to skip")
	cmd.Flags().StringVar(&room, "room", "", "only this room's sessions")
	statusFlag := enumFlag{"status", queryEnum("/api/v1/sessions", "status")}
	statusFlag.bind(cmd, &status, "", "only sessions of this status")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if limit < 0 || offset < 0 {
			return usageErrorf("--limit and --offset must not be negative")
		}
		if err := statusFlag.check(cmd, status); err != nil {
			return err
		}
		return apiCall(cmd, f, http.MethodGet, "/api/v1/sessions"+pageQuery(limit, offset, "room_id", room, "status", status), nil,
			listTable("sessions", field("ID", "id"), field("ROOM", "room_id"), field("STATUS", "status"),
				field("START", "start_time"), field("END", "end_time"),
				// Those in the session now, and the joins over all of it
				// (one who came back counts twice), as the API has them.
				field("PRESENT", "participant_count"), field("JOINS", "total_participants"),
				field("END_REASON", "end_reason")))
	}
	return cmd
}

func sessionEndCmd(f *apiFlags) *cobra.Command {
	return callCmd(f, "end SESSION", "End a session in progress: everyone leaves; the room stays open", 1, http.MethodPost,
		pathOf("sessions", "/end"), objectTable)
}

func sessionGetCmd(f *apiFlags) *cobra.Command {
	return callCmd(f, "get SESSION", "Show a session", 1, http.MethodGet, pathOf("sessions", ""), objectTable)
}

func sessionParticipantsCmd(f *apiFlags) *cobra.Command {
	return callCmd(f, "participants SESSION", "List who took part in a session", 1, http.MethodGet, pathOf("sessions", "/participants"),
		listTable("participants", field("PARTICIPANT", "participant_id"), field("IDENTITY", "identity"),
			field("ROLE", "role"), field("JOINED", "joined_at"), field("LEFT", "left_at"),
			field("SECONDS", "duration"), field("REASON", "leave_reason")))
}

func sessionStatsCmd(f *apiFlags) *cobra.Command {
	cols := []column{field("PARTICIPANT", "participant_id"), field("IDENTITY", "identity"), field("LIVE", "live"),
		field("PACKETS_IN", "packets_in"), field("PACKETS_OUT", "packets_out"), field("DROPPED", "packets_dropped"),
		field("LOSS", "loss"), field("NACKS", "nacks")}
	return callCmd(f, "stats SESSION", "Show a session's media figures per participant", 1, http.MethodGet, pathOf("sessions", "/stats"),
		func(v any) table {
			t := listTable("participants", cols...)(v)
			obj, _ := v.(map[string]any)
			if totals, ok := obj["totals"].(map[string]any); ok {
				row := make([]string, len(cols))
				for i, c := range cols {
					row[i] = c.cell(totals)
				}
				row[0], row[1], row[2] = "TOTAL", "", ""
				t.rows = append(t.rows, row)
			}
			return t
		})
}
