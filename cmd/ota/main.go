// Command ota is otakit's command-line tool: MCUboot image signing, delta
// patches, update packages and manifests, device simulation and the fleet
// server. Each command group lives in its own file and only wires flags to
// the packages that do the work.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

// Exit codes, as documented in README.md.
const (
	exitOK          = 0
	exitVerifyFail  = 1 // a signature, hash or policy check failed
	exitUsageOrData = 2 // bad flags, unreadable or malformed input, other errors
)

// commands holds the constructors of the top-level command groups; each
// command file appends to it from init so that groups stay independent.
var commands []func() *cobra.Command

// verifyError marks an error as a failed verification (exit code 1), as
// opposed to a usage or input error (exit code 2).
type verifyError struct{ err error }

func (e verifyError) Error() string { return e.err.Error() }
func (e verifyError) Unwrap() error { return e.err }

// verificationFailed wraps err so that ota exits with code 1.
func verificationFailed(err error) error {
	if err == nil {
		return nil
	}
	return verifyError{err}
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "ota",
		Short:         "otakit: MCUboot images, delta updates, packages, devices and fleet in one tool",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	for _, newCmd := range commands {
		root.AddCommand(newCmd())
	}
	return root
}

// run executes ota with args and returns the process exit code.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "ota: %v\n", err)
	var ve verifyError
	if errors.As(err, &ve) {
		return exitVerifyFail
	}
	return exitUsageOrData
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
