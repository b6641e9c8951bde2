# syntax=docker/dockerfile:1
#
# Vigil as a container: a static binary (the SQLite driver is pure Go, so CGO is off) on a
# distroless base, running as the unprivileged "nonroot" user (uid 65532) with its data in
# /data. Build with `docker build -t vigil .`; `docker compose up --build` runs it with
# KurrentDB and NATS (see docker-compose.yml).

FROM golang:1.26.8 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w" -o /out/vigil ./cmd/vigil

# The runtime image has no shell and no HTTP client, so the health check is a tiny static
# program: it exits 0 when GET http://127.0.0.1:<port of VIGIL_ADDR><path> (default /readyz)
# answers 200.
COPY <<"EOF" /tmp/healthcheck.go
package main

import (
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	_, port, err := net.SplitHostPort(os.Getenv("VIGIL_ADDR"))
	if err != nil || port == "" {
		port = "8080"
	}
	path := "/readyz"
	if len(os.Args) > 1 {
		path = os.Args[1]
	}
	c := http.Client{Timeout: 4 * time.Second}
	resp, err := c.Get("http://" + net.JoinHostPort("127.0.0.1", port) + path)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		os.Stderr.WriteString(path + ": " + resp.Status + "\n")
		os.Exit(1)
	}
}
EOF
RUN cd /tmp && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/vigil-healthcheck healthcheck.go \
    && mkdir -p /out/data

# distroless publishes no versioned tags: pin it by digest when building releases, e.g.
#   FROM gcr.io/distroless/static-debian12:nonroot@sha256:<digest of
#   `docker buildx imagetools inspect gcr.io/distroless/static-debian12:nonroot`>
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/vigil /out/vigil-healthcheck /usr/local/bin/
# /data belongs to nonroot, so that a fresh named volume mounted there is writable.
COPY --from=build --chown=65532:65532 /out/data /data
ENV VIGIL_ADDR=0.0.0.0:8080 \
    VIGIL_DATA_DIR=/data
USER 65532:65532
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Readiness, with a start period that covers catching up on a long log (docker-compose.yml).
HEALTHCHECK --interval=10s --timeout=5s --start-period=10m --start-interval=2s --retries=3 \
    CMD ["/usr/local/bin/vigil-healthcheck", "/readyz"]
# The built binary is PID 1 and gets SIGTERM itself (never `go run`, which does not forward
# it). `docker run vigil` serves; `docker run vigil <command> ...` runs another sub-command.
ENTRYPOINT ["/usr/local/bin/vigil"]
CMD ["serve"]
