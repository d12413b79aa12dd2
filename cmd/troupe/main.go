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
		os.Exit(1)
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
	root.AddCommand(newServeCmd(), newTokenCmd(), newVersionCmd(), newBenchCmd())
	return root
}
