// Command mdefn runs the mdefn functions.
//
//	mdefn            serve: the runtime is detected from the environment
//	                 (AWS Lambda, Azure Functions custom handler, or a local
//	                 HTTP server on MDE_LISTEN_ADDR)
//	mdefn dev        the embedded Defender/Entra/Key Vault simulator and the
//	                 functions on http://127.0.0.1:7071/api/...
//	mdefn version    print the version
package main

import (
	"fmt"
	"os"

	"github.com/mdefn/mdefn/internal/devserver"
	"github.com/mdefn/mdefn/internal/doctor"
	"github.com/mdefn/mdefn/internal/wiring"
	"github.com/mdefn/mdefn/pkg/atp"
)

const usage = `usage: mdefn [command]

commands:
  serve      serve the functions; the runtime is detected from the environment
             (AWS_LAMBDA_RUNTIME_API: Lambda; FUNCTIONS_CUSTOMHANDLER_PORT: Azure
             Functions custom handler; otherwise a local server on MDE_LISTEN_ADDR).
             This is the default command.
  dev        start the embedded simulator and every function on
             http://127.0.0.1:7071/api/... (flags: -addr, -demo)
  doctor     check the MDE_* settings of this environment against the real
             vault, Entra ID and Defender, and print the fix for each problem
  version    print the version
`

func main() {
	cmd := "serve"
	args := os.Args[1:]
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		wiring.Main("")
	case "dev":
		if err := devserver.Command(args); err != nil {
			fmt.Fprintln(os.Stderr, "mdefn dev:", err)
			os.Exit(1)
		}
	case "doctor":
		os.Exit(doctor.Command(args))
	case "version", "-version", "--version":
		fmt.Println("mdefn", atp.Version)
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "mdefn: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
}
