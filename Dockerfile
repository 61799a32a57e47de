# Build the netpol2authz binary.
# The builder is pinned to a Go release at least as new as go.mod asks for; it
# runs on the build platform and cross-compiles for the target one.
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Download modules first so that a source change reuses the layer.
COPY go.mod go.sum ./
RUN go mod download

# Every package the binary needs (test/install checks this list against
# `go list -deps`); .dockerignore keeps tests and testdata out.
COPY *.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/

# A static binary: no cgo, so it runs on distroless/static.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o netpol2authz .

# Run as the distroless nonroot user (65532), nothing but the binary.
FROM gcr.io/distroless/static-debian12:nonroot
LABEL org.opencontainers.image.source="https://github.com/netpol2authz/netpol2authz"
WORKDIR /
COPY --from=builder /workspace/netpol2authz /netpol2authz
USER 65532:65532

ENTRYPOINT ["/netpol2authz"]
CMD ["manager"]
