package wiring

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/mdefn/mdefn/internal/config"
	"github.com/mdefn/mdefn/internal/platform"
)

var stdout io.Writer = os.Stdout

// Main is the whole program of a deployed function process: load the
// configuration (a bad one exits 2 with one line on stderr, before serving),
// build, and serve the runtime detected from the environment. function names
// the one function a Lambda bootstrap serves ("" for the Azure executable and
// the local server, which serve all three).
func Main(function string) {
	cfg, err := config.Load(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mdefn: configuration:", err)
		os.Exit(2)
	}
	// One transport for every client; the first secret read opens the
	// Entra and Defender connections meanwhile (preconnect.go).
	warm, client := newPreconnector()
	// The first invocation's first TLS handshake would otherwise wait for
	// the system roots to be read and parsed (roots_linux.go): load them
	// now, alongside the rest of the cold start. No upstream is called.
	go warm.roots()
	c, err := Build(cfg, &Options{HTTPClient: client, warm: warm})
	if err != nil {
		fmt.Fprintln(os.Stderr, "mdefn:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := platform.Run(ctx, c.App, function, cfg.ListenAddr, os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "mdefn:", err)
		os.Exit(1)
	}
}
