package main

import (
	"strings"

	"github.com/spf13/cobra"
)

// argsError is the usage error of a command line whose arguments cmd does
// not take (err is what cmd's Args said): one line that names what the
// command takes and its usage, in place of cobra's bare count.
func argsError(cmd *cobra.Command, args []string, err error) error {
	if cmd.HasAvailableSubCommands() {
		// A group: its argument was taken for a subcommand it lacks.
		return usageErrorf("%w; %s --help lists its commands", err, cmd.CommandPath())
	}
	name := strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()+" ")
	usage := cmd.UseLine()
	want := positional(cmd.Use)
	if want == "" {
		return usageErrorf("%s takes no arguments, was given %d (%q); usage: %s", name, len(args), strings.Join(args, " "), usage)
	}
	return usageErrorf("%s takes %s, was given %d %s; usage: %s", name, want, len(args), plural(len(args), "argument"), usage)
}

// positional is the arguments a command's Use line names: the words
// after its name up to the first option ("download RECORDING FILE
// [-o PATH]" takes "RECORDING FILE").
func positional(use string) string {
	words := strings.Fields(use)
	var args []string
	for _, w := range words[min(1, len(words)):] {
		if strings.HasPrefix(w, "-") || strings.HasPrefix(w, "[") {
			break
		}
		args = append(args, w)
	}
	return strings.Join(args, " ")
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
