# syntax=docker/dockerfile:1
#
# Chatterly: a static Go binary on distroless, running as non-root.
#   docker build -t chatterly .      (or: docker compose up --build)
#
# Base images are pinned by exact version. Run .ci/pin-images (needs Docker,
# crane or skopeo) to add or refresh their digests (image:tag@sha256:...); a
# pinned digest wins over the tag, so bump both together (the script does).
#
# The Go image's version must be the toolchain line of go.mod (go1.27.3):
# official golang images set GOTOOLCHAIN=local, so a mismatch would silently
# build with another Go. The check below fails the build instead, and
# cmd/chatterly/compose_test.go fails the tests on a bump of one but not the other.
FROM golang:1.27.3-bookworm AS build
ENV GOTOOLCHAIN=local CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN want="$(sed -n 's/^toolchain //p' go.mod)"; have="$(go env GOVERSION)"; \
    if [ -n "$want" ] && [ "$want" != "$have" ]; then \
      echo "go.mod asks for toolchain $want but this image has $have: change FROM golang:... in the Dockerfile" >&2; exit 1; \
    fi
COPY . .
# go build downloads only the modules ./cmd/chatterly imports, not the tools
# go.mod pins (sqlc, golangci-lint, task, govulncheck: gigabytes). The cache
# mounts keep modules and compiled packages between builds on this builder.
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/chatterly ./cmd/chatterly

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/chatterly /chatterly
USER nonroot:nonroot
EXPOSE 3001
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 CMD ["/chatterly", "healthcheck"]
ENTRYPOINT ["/chatterly"]
CMD ["serve"]
