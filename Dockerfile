# Build the netpol2authz binary.
# The builder is pinned to the Go release go.mod asks for.
FROM --platform=$BUILDPLATFORM golang:1.26.8-bookworm AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Download modules first so that a source change reuses the layer.
COPY go.mod go.sum ./
RUN go mod download

COPY main.go manager.go ./
COPY api/ api/
COPY controllers/ controllers/
COPY internal/ internal/

# A static binary: no cgo, so it runs on distroless/static.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -ldflags="-s -w" -o netpol2authz .

# Run as the distroless nonroot user (65532), nothing but the binary.
FROM gcr.io/distroless/static-debian12:nonroot
WORKDIR /
COPY --from=builder /workspace/netpol2authz /netpol2authz
USER 65532:65532

ENTRYPOINT ["/netpol2authz"]
CMD ["manager"]
