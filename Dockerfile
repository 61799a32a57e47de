# Build the netpol2authz binary.
# The builder is pinned to a Go release at least as new as go.mod asks for; it
# runs on the build platform and cross-compiles for the target one.
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS builder
ARG TARGETOS
ARG TARGETARCH
# The release and commit stamped into the binary: `make docker-build` and
# `make docker-buildx` pass the VERSION file's content and `git rev-parse
# HEAD`. Without them the binary still knows its release (it embeds the
# VERSION file) but not its commit (.git is not in the build context).
ARG VERSION
ARG COMMIT

WORKDIR /workspace
# Download modules first so that a source change reuses the layer.
COPY go.mod go.sum ./
RUN go mod download

# Every package the binary needs (test/install checks this list against
# `go list -deps`); .dockerignore keeps tests and testdata out.
COPY *.go VERSION ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/

# A static binary: no cgo, so it runs on distroless/static.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath \
    -ldflags="-s -w -X github.com/netpol2authz/netpol2authz/internal/version.Version=${VERSION} -X github.com/netpol2authz/netpol2authz/internal/version.Commit=${COMMIT}" \
    -o netpol2authz .

# Run as the distroless nonroot user (65532), nothing but the binary.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION
ARG COMMIT
LABEL org.opencontainers.image.source="https://github.com/netpol2authz/netpol2authz" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${COMMIT}"
WORKDIR /
COPY --from=builder /workspace/netpol2authz /netpol2authz
USER 65532:65532

ENTRYPOINT ["/netpol2authz"]
CMD ["manager"]
