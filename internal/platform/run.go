package platform

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
)

// Run serves a on the runtime getenv describes until ctx ends:
//
//   - AWS_LAMBDA_RUNTIME_API set: AWS Lambda, serving function (the
//     bootstrap's one function; empty or unknown is an error). aws-lambda-go
//     reads the variable from the process environment itself, so getenv must
//     be os.Getenv there. Run does not return while Lambda runs the process.
//   - FUNCTIONS_CUSTOMHANDLER_PORT set: the Azure Functions custom handler
//     (AzureHandler) on 127.0.0.1 at that port.
//   - otherwise the local server (HTTPHandler) on listenAddr (the
//     configuration's MDE_LISTEN_ADDR, validated and defaulted there).
//
// When ctx ends the server stops taking connections and waits for running
// invocations (up to a.Timeout plus a few seconds), then Run returns nil.
// A listen failure or a bad setting is returned at once.
func Run(ctx context.Context, a *App, function, listenAddr string, getenv func(string) string) error {
	if getenv("AWS_LAMBDA_RUNTIME_API") != "" {
		if function == "" {
			return errors.New("platform: on AWS Lambda the bootstrap must name its function")
		}
		if a.Functions[function] == nil {
			return fmt.Errorf("platform: function %q is not served by this bootstrap", function)
		}
		lambda.StartWithOptions(a.LambdaHandler(function), lambda.WithContext(ctx))
		return nil // not reached: lambda.StartWithOptions exits the process on failure
	}
	if port := getenv("FUNCTIONS_CUSTOMHANDLER_PORT"); port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("platform: FUNCTIONS_CUSTOMHANDLER_PORT %q is not a port number", port)
		}
		return a.listenAndServe(ctx, net.JoinHostPort("127.0.0.1", port), a.AzureHandler(), "azure")
	}
	if listenAddr == "" {
		return errors.New("platform: the local server needs a listen address (MDE_LISTEN_ADDR)")
	}
	return a.listenAndServe(ctx, listenAddr, a.HTTPHandler(), "local")
}

func (a *App) listenAndServe(ctx context.Context, addr string, h http.Handler, mode string) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("platform: listen on %s: %w", addr, err)
	}
	a.logger().InfoContext(ctx, "listening", "mode", mode, "addr", ln.Addr().String())
	return a.serve(ctx, ln, h)
}

// serve serves h on ln until ctx ends, then shuts down gracefully.
func (a *App) serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("platform: serve: %w", err)
	case <-ctx.Done():
	}
	grace := a.Timeout + 5*time.Second
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		return fmt.Errorf("platform: shutdown: %w", err)
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("platform: serve: %w", err)
	}
	return nil
}
