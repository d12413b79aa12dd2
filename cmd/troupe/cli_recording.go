package main

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
)

func newRecordingCmd() *cobra.Command {
	return apiCommand("recording", "List, start, stop, download and delete recordings", &apiFlags{},
		recordingListCmd, recordingGetCmd, recordingStartCmd, recordingStopCmd, recordingDownloadCmd, recordingDeleteCmd)
}

func recordingListCmd(f *apiFlags) *cobra.Command {
	var limit, offset int
	var room, session, status string
	cmd := &cobra.Command{Use: "list", Short: "List recordings, newest first", Args: cobra.NoArgs}
	cmd.Flags().IntVar(&limit, "limit", 0, "recordings per page, 1 to 100 (default: the server's, 20)")
	cmd.Flags().IntVar(&offset, "offset", 0, "recordings to skip")
	cmd.Flags().StringVar(&room, "room", "", "only this room's recordings")
	cmd.Flags().StringVar(&session, "session", "", "only this session's recordings")
	statusFlag := enumFlag{"status", queryEnum("/api/v1/recordings", "status")}
	statusFlag.bind(cmd, &status, "", "only recordings of this status")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if limit < 0 || offset < 0 {
			return usageErrorf("--limit and --offset must not be negative")
		}
		if err := statusFlag.check(cmd, status); err != nil {
			return err
		}
		query := pageQuery(limit, offset, "room_id", room, "session_id", session, "status", status)
		return apiCall(cmd, f, http.MethodGet, "/api/v1/recordings"+query, nil,
			listTable("recordings", field("ID", "id"), field("ROOM", "room_id"), field("STATUS", "status"),
				field("STARTED", "started_at"), field("SECONDS", "duration"), field("BYTES", "size"),
				column{"FILES", func(r map[string]any) string {
					files, _ := r["files"].([]any)
					return fmt.Sprint(len(files))
				}}))
	}
	return cmd
}

func recordingGetCmd(f *apiFlags) *cobra.Command {
	return callCmd(f, "get RECORDING", "Show a recording and its files", 1, http.MethodGet,
		pathOf("recordings", ""), recordingTable)
}

// recordingFileColumns are the columns of a recording's files.
var recordingFileColumns = listTable("files", field("FILE", "name"), field("IDENTITY", "identity"),
	field("CODECS", "codecs"), field("BYTES", "size"), field("SECONDS", "duration"), field("WRITING", "writing"))

// recordingTable shows a recording's fields, then its files as a table of
// their own rather than as JSON in a cell.
func recordingTable(v any) table {
	obj, _ := v.(map[string]any)
	rest := make(map[string]any, len(obj))
	for k, x := range obj {
		if k != "files" {
			rest[k] = x
		}
	}
	t := objectTable(rest)
	if files, _ := obj["files"].([]any); len(files) > 0 {
		var b strings.Builder
		_ = recordingFileColumns(obj).write(&b) // a strings.Builder does not fail
		t.footer = "\n" + strings.TrimSuffix(b.String(), "\n")
	} else {
		t.rows = append(t.rows, []string{"files", "-"})
		sort.Slice(t.rows, func(i, j int) bool { return t.rows[i][0] < t.rows[j][0] })
	}
	return t
}

func recordingStartCmd(f *apiFlags) *cobra.Command {
	var audioOnly bool
	cmd := &cobra.Command{Use: "start ROOM", Short: "Start recording a room's session", Args: cobra.ExactArgs(1)}
	cmd.Flags().BoolVar(&audioOnly, "audio-only", false, "record the audio tracks only")
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		var body any
		if audioOnly {
			body = map[string]any{"audio_only": true}
		}
		return apiCall(cmd, f, http.MethodPost, "/api/v1/rooms/"+seg(args[0])+"/recordings", body, recordingTable)
	}
	return cmd
}

func recordingStopCmd(f *apiFlags) *cobra.Command {
	return callCmd(f, "stop RECORDING", "Stop a recording (it completes once its files are closed)", 1, http.MethodPost,
		pathOf("recordings", "/stop"), recordingTable)
}

func recordingDeleteCmd(f *apiFlags) *cobra.Command {
	return doneCmd(f, "delete RECORDING", "Delete a recording that has ended, and its files", 1, http.MethodDelete,
		pathOf("recordings", ""), func(a []string) string { return "deleted recording " + a[0] })
}

func recordingDownloadCmd(f *apiFlags) *cobra.Command {
	var output string
	cmd := &cobra.Command{Use: "download RECORDING FILE [-o PATH]", Short: "Download one file of a recording", Args: cobra.ExactArgs(2)}
	cmd.Flags().StringVarP(&output, "output", "o", "", "where to write it (default: the file's name, in this directory; - for stdout)")
	cmd.RunE = func(cmd *cobra.Command, args []string) (err error) {
		c, err := f.client(cmd)
		if err != nil {
			return err
		}
		path := "/api/v1/recordings/" + seg(args[0]) + "/files/" + seg(args[1])
		if output == "-" {
			_, err := c.download(cmd.Context(), path, cmd.OutOrStdout())
			return err
		}
		if output == "" {
			output = filepath.Base(args[1])
		}
		// Written aside and renamed once complete: a failed download
		// leaves no partial file under the name.
		tmp, err := os.CreateTemp(filepath.Dir(output), "."+filepath.Base(output)+".*")
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				os.Remove(tmp.Name())
			}
		}()
		n, err := c.download(cmd.Context(), path, tmp)
		if err = errors.Join(err, tmp.Close()); err != nil {
			return err
		}
		if err := os.Rename(tmp.Name(), output); err != nil {
			return err
		}
		done(cmd, f, "wrote %s (%d bytes)", output, n)
		return nil
	}
	return cmd
}
