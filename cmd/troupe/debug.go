package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
)

// startDebugServer serves Go's profiler on addr, on a listener of its own so
// that it never shares the API's port, auth or rate limit. The returned
// stop ends it and waits for its goroutine. The process's command line
// (pprof's cmdline) is not served: it may hold --api-secret; Index answers
// its path as an unknown profile.
func startDebugServer(addr string, log *slog.Logger) (stop func(context.Context) error, err error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return startSideServer(addr, "debug", "/debug/pprof/", mux, log, func(a netip.Addr) error {
		// Validate took a loopback address or localhost, which a hosts
		// file may point elsewhere.
		if !a.Unmap().IsLoopback() {
			return fmt.Errorf("%w: --debug-addr %q: bound to %s: the profiler is unauthenticated: give a loopback address", ErrInvalidConfig, addr, a)
		}
		return nil
	})
}

// startSideServer serves h on a listener of its own at addr (the profiler,
// the metrics), apart from the API's port, its auth and its limits; what
// names it in errors and logs, and path is the page its start is logged
// with. bound checks the address the listener got, a host name's
// resolved: an error closes it before it serves. The returned stop ends
// it and waits for its goroutine.
func startSideServer(addr, what, path string, h http.Handler, log *slog.Logger, bound func(netip.Addr) error) (stop func(context.Context) error, err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("%s listener: %w", what, err)
	}
	if err := bound(ln.Addr().(*net.TCPAddr).AddrPort().Addr()); err != nil {
		ln.Close()
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: readHeaderTimeout}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			log.Warn(what+" listener stopped", "err", err)
		}
	}()
	log.Info(what+" listener serving", "addr", "http://"+ln.Addr().String()+path)
	return func(ctx context.Context) error {
		err := srv.Shutdown(ctx)
		if err != nil {
			// Requests still running when ctx ends (a profile being
			// taken) are cut short.
			srv.Close()
		}
		<-done
		return err
	}, nil
}
