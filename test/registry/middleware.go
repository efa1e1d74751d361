package registry

import (
	"net/http"
	"strings"
	"time"
)

// BasicAuth demands HTTP basic auth with user and password on every request.
func BasicAuth(user, password string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != password {
				w.Header().Set("WWW-Authenticate", `Basic realm="keelson-test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func isBlobGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/")
}

// StallBlobs sends the first `after` bytes of every blob larger than that, then stops
// sending (without closing) until the client gives up.
func StallBlobs(after int) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !isBlobGet(r) {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(&stallWriter{ResponseWriter: w, left: after, done: r.Context().Done()}, r)
		})
	}
}

type stallWriter struct {
	http.ResponseWriter
	left int
	done <-chan struct{}
}

func (s *stallWriter) Write(b []byte) (int, error) {
	if len(b) <= s.left {
		s.left -= len(b)
		return s.ResponseWriter.Write(b)
	}
	n, err := s.ResponseWriter.Write(b[:s.left])
	s.left = 0
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
	if err != nil {
		return n, err
	}
	<-s.done // stall until the client hangs up
	return n, http.ErrHandlerTimeout
}

// SlowBlobs sends blobs in chunks of `chunk` bytes with `delay` between them: slow,
// but always moving.
func SlowBlobs(chunk int, delay time.Duration) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !isBlobGet(r) {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(&slowWriter{ResponseWriter: w, chunk: chunk, delay: delay, done: r.Context().Done()}, r)
		})
	}
}

type slowWriter struct {
	http.ResponseWriter
	chunk int
	delay time.Duration
	done  <-chan struct{}
}

func (s *slowWriter) Write(b []byte) (int, error) {
	written := 0
	for len(b) > 0 {
		n := min(s.chunk, len(b))
		m, err := s.ResponseWriter.Write(b[:n])
		written += m
		if err != nil {
			return written, err
		}
		if f, ok := s.ResponseWriter.(http.Flusher); ok {
			f.Flush()
		}
		b = b[n:]
		select {
		case <-s.done:
			return written, http.ErrHandlerTimeout
		case <-time.After(s.delay):
		}
	}
	return written, nil
}
