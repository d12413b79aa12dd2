package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
)

// startDebugServer serves Go's profiler on addr, on a listener of its own so
// that it never shares the API's port, auth or rate limit. The returned
// stop ends it and waits for its goroutine. The process's command line
// (pprof's cmdline) is not served: it may hold --api-secret; Index answers
// its path as an unknown profile.
func startDebugServer(addr string, log *slog.Logger) (stop func(context.Context) error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("debug listener: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: readHeaderTimeout}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Warn("debug server stopped", "err", err)
		}
	}()
	log.Info("profiler serving", "addr", "http://"+ln.Addr().String()+"/debug/pprof/")
	return func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if err != nil {
			// Profiles still being taken when ctx ends are cut short.
			srv.Close()
		}
		<-done
		return err
	}, nil
}
