package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal starts the orderly stop, restore the default
	// handling so that a second Ctrl-C ends the process at once.
	go func() {
		<-ctx.Done()
		stop()
	}()
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	if err != nil {
		fmt.Fprintf(os.Stderr, "troupe: %s\n", oneLine(err.Error()))
		os.Exit(exitStatus(err))
	}
}

// newRootCmd returns the command tree. The root itself runs the server, so
// `troupe` and `troupe serve` are the same, flags included.
func newRootCmd() *cobra.Command {
	root := newServeCmd()
	root.Use = "troupe"
	root.Short = "Troupe, a WebRTC SFU built on actors"
	root.Long = "Troupe is a WebRTC SFU built on actors. Without a subcommand it runs the\nserver, exactly as `troupe serve`.\n\n" + root.Long
	root.CompletionOptions.DisableDefaultCmd = true
	root.Version = versionString()
	root.SilenceErrors = true // main prints one line
	root.SilenceUsage = true
	root.SetVersionTemplate("{{.Version}}\n")
	root.AddCommand(newServeCmd(), newTokenCmd(), newVersionCmd(), newBenchCmd(),
		newRoomCmd(), newParticipantCmd(), newSessionCmd(), newRecordingCmd(), newJoinCmd())
	markUsageErrors(root)
	return root
}

// markUsageErrors makes the errors cobra finds in a command line (flags
// that do not parse, arguments a command does not take) usage errors,
// throughout the tree under root.
func markUsageErrors(root *cobra.Command) {
	// Children inherit the root's flag error function.
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		if args := c.Args; args != nil {
			c.Args = func(cmd *cobra.Command, a []string) error {
				if err := args(cmd, a); err != nil {
					return argsError(cmd, a, err)
				}
				return nil
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}
