# netpol2authz — build, generate and test.
#
# Every tool is pinned below and built from the Go module proxy into bin/.
# The test control plane (kube-apiserver + etcd) is built from source the same
# way, from the tools modules under hack/tools/, and cached under bin/k8s/.

# The release: the VERSION file (see docs/development.md#releasing). make
# build and the image stamp it into the binary, build-installer renders it into
# dist/install.yaml and the chart. `make VERSION=...` overrides it.
VERSION := $(shell cat VERSION)
# The chart's version: the release without its leading v (SemVer).
CHART_VERSION = $(VERSION:v%=%)
# The commit built, with -dirty when tracked files have changes, stamped into
# the binary by make build and the Dockerfile (the go command's own record is
# off under GOFLAGS=-buildvcs=false, and the image's context has no .git).
COMMIT = $(shell c=$$(git rev-parse HEAD 2>/dev/null) && { git diff --quiet HEAD 2>/dev/null || c=$$c-dirty; echo $$c; })
VERSION_PKG := github.com/netpol2authz/netpol2authz/internal/version
IMG ?= ghcr.io/netpol2authz/netpol2authz:$(VERSION)

# Pinned tool versions.
CONTROLLER_TOOLS_VERSION ?= v0.23.0
KUSTOMIZE_VERSION ?= v5.8.2
HELM_VERSION ?= v4.3.1

# The control plane's versions are pinned by the tools modules' go.mod files.
KUBE_VERSION := $(shell awk '$$1=="require" && $$2=="k8s.io/kubernetes" {print $$3}' hack/tools/kubernetes/go.mod)
ETCD_VERSION := $(shell awk '$$1=="require" && $$2=="go.etcd.io/etcd/server/v3" {print $$3}' hack/tools/etcd/go.mod)
# promtool's version (Prometheus 3.x is module version v0.3xx.y), pinned by its tools module.
PROMETHEUS_VERSION := $(shell awk '$$1=="require" && $$2=="github.com/prometheus/prometheus" {print $$3}' hack/tools/prometheus/go.mod)
# golangci-lint's version, pinned by its tools module.
GOLANGCI_LINT_VERSION := $(shell awk '$$1=="require" && $$2=="github.com/golangci/golangci-lint/v2" {print $$3}' hack/tools/golangci-lint/go.mod)

SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

LOCALBIN ?= $(CURDIR)/bin
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen-$(CONTROLLER_TOOLS_VERSION)
KUSTOMIZE ?= $(LOCALBIN)/kustomize-$(KUSTOMIZE_VERSION)
HELM ?= $(LOCALBIN)/helm-$(HELM_VERSION)
PROMTOOL ?= $(LOCALBIN)/promtool-$(PROMETHEUS_VERSION)
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint-$(GOLANGCI_LINT_VERSION)
# kube-api-linter (a golangci-lint with the Kube API Linter built in), pinned
# by hack/tools/kube-api-linter/go.mod.
KUBE_API_LINTER_VERSION := $(shell awk '$$1=="sigs.k8s.io/kube-api-linter" {print $$2}' hack/tools/kube-api-linter/go.mod)
KUBE_API_LINTER ?= $(LOCALBIN)/kube-api-linter-$(KUBE_API_LINTER_VERSION)
# istiod (pilot-discovery), pinned by hack/tools/istio/go.mod, for the
# end-to-end tests and the demo; exported so that they find it.
ISTIO_VERSION := $(shell awk '$$1=="istio.io/istio" {print $$2}' hack/tools/istio/go.mod)
ISTIOD ?= $(LOCALBIN)/istio-$(ISTIO_VERSION)/pilot-discovery
export ISTIOD
ENVTEST_DIR ?= $(LOCALBIN)/k8s/kube-$(KUBE_VERSION)-etcd-$(ETCD_VERSION)

# A KUBEBUILDER_ASSETS the user already has wins over building our own.
ifeq ($(origin KUBEBUILDER_ASSETS),undefined)
KUBEBUILDER_ASSETS := $(ENVTEST_DIR)
BUILD_ENVTEST := 1
endif
export KUBEBUILDER_ASSETS

GO_PACKAGES ?= ./...

.PHONY: all
all: build

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: controller-gen ## Generate the CRD and RBAC manifests from the kubebuilder markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd paths="./api/..." paths="./controllers/..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: fmt
fmt: ## Format the code (go fmt).
	go fmt ./...

.PHONY: fmt-check
fmt-check: ## Fail when any Go file is not gofmt-formatted.
	@out="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

.PHONY: vet
vet: ## Run go vet.
	go vet ./...

.PHONY: lint
lint: golangci-lint lint-api ## Run golangci-lint with .golangci.yml, and kube-api-linter on api/ (docs/development.md#lint).
	"$(GOLANGCI_LINT)" run $(LINT_ARGS)

.PHONY: lint-api
lint-api: kube-api-linter ## Run kube-api-linter on api/ with .golangci-kal.yml.
	"$(KUBE_API_LINTER)" run --config .golangci-kal.yml ./api/...

.PHONY: test
test: manifests generate fmt-check vet lint verify-api-docs envtest istiod kustomize helm check-alerts ## Generate, check formatting, vet, lint, and run every test against a real kube-apiserver, etcd and istiod.
	KUSTOMIZE="$(KUSTOMIZE)" HELM="$(HELM)" go test $(GO_PACKAGES) -count=1 -timeout 30m $(TEST_ARGS)

# test-unit and test-integration split what make test runs. A test starts a
# control plane (kube-apiserver and etcd, and istiod for test/istio) through
# internal/testenv only, so the packages that import it (in code or tests) are
# the integration ones; every other package is a unit one. internal/cli has
# both: its live tests (CLI_LIVE_TESTS) start a control plane, the rest do not.
MODULE := github.com/netpol2authz/netpol2authz
TESTENV_PKG := $(MODULE)/internal/testenv
CLI_PKG := ./internal/cli
CLI_LIVE_TESTS ?= ^TestVerifyLive
list-testenv-importers = go list -f '{{.ImportPath}} {{join .Imports " "}} {{join .TestImports " "}} {{join .XTestImports " "}}' ./... | \
	awk '{ for (i = 2; i <= NF; i++) if ($$i == "$(TESTENV_PKG)") { print $$1; next } }'
INTEGRATION_PACKAGES = $(filter-out $(CLI_PKG),$(patsubst $(MODULE)%,.%,$(shell $(list-testenv-importers))))
UNIT_PACKAGES = $(filter-out $(INTEGRATION_PACKAGES),$(patsubst $(MODULE)%,.%,$(shell go list ./...)))

.PHONY: test-unit
test-unit: ## Run the tests that need no control plane, in seconds (engine, verify, manifests, synth, CLI goldens).
	go test $(UNIT_PACKAGES) -count=1 -skip '$(CLI_LIVE_TESTS)' $(TEST_ARGS)

.PHONY: test-integration
test-integration: manifests generate envtest istiod kustomize helm ## Run the tests that start kube-apiserver and etcd (istiod too for test/istio): controllers, internal/cli's live tests, the demo, test/crash, test/install, test/istio.
	KUSTOMIZE="$(KUSTOMIZE)" HELM="$(HELM)" go test $(INTEGRATION_PACKAGES) -count=1 -timeout 30m $(TEST_ARGS)
	go test $(CLI_PKG) -count=1 -run '$(CLI_LIVE_TESTS)' $(TEST_ARGS)

# test/crash runs 3 crash rounds in make test; test-crash runs CRASH_ROUNDS.
# CRASH_SEED=N replays the churns of a run (each run prints its seed).
CRASH_ROUNDS ?= 20

.PHONY: test-crash
test-crash: envtest ## Run test/crash (SIGKILL during a churn, failover, resync) with CRASH_ROUNDS (20) crash rounds; CRASH_SEED=N replays a run.
	CRASH_ROUNDS=$(CRASH_ROUNDS) $(if $(CRASH_SEED),CRASH_SEED=$(CRASH_SEED)) go test ./test/crash -count=1 -timeout 60m -v $(TEST_ARGS)

# Each fuzz target runs for FUZZTIME; go test fuzzes one target at a time.
FUZZTIME ?= 10s

.PHONY: fuzz
fuzz: ## Run each fuzz target (every func Fuzz* of the tests) for FUZZTIME (10s) in turn.
	@grep -rl --include='*_test.go' --exclude-dir=bin --exclude-dir=.git '^func Fuzz' . | sort | while read -r f; do \
		pkg="./$$(dirname "$${f#./}")"; \
		for fn in $$(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$$f"); do \
			echo "go test $$pkg -run '^\$$' -fuzz '^$$fn\$$' -fuzztime $(FUZZTIME)"; \
			go test "$$pkg" -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) $(FUZZ_ARGS) || exit 1; \
		done; \
	done

.PHONY: check-alerts
check-alerts: promtool ## Check the chart's alerting rules and run their unit tests with promtool.
	"$(PROMTOOL)" check rules --lint-fatal dist/chart/files/prometheus-rules.yaml
	"$(PROMTOOL)" test rules test/prometheus/rules_test.yaml

.PHONY: bench
bench: envtest ## Run the benchmarks.
	go test ./... -run '^$$' -bench . -benchmem -timeout 60m $(BENCH_ARGS)

.PHONY: verify-generated
verify-generated: manifests generate ## Fail when generated files differ from the committed ones.
	@git diff --exit-code -- config/ api/ || { echo "generated files are stale: run 'make manifests generate' and commit"; exit 1; }

.PHONY: api-docs
api-docs: ## Write docs/api.md, the API reference, from the Go types in api/v1alpha1 (hack/apidocs).
	go run ./hack/apidocs -dir api/v1alpha1 -out docs/api.md

.PHONY: verify-api-docs
verify-api-docs: ## Fail when docs/api.md is not what make api-docs writes.
	@tmp=$$(mktemp); trap 'rm -f "$$tmp"' EXIT; \
	go run ./hack/apidocs -dir api/v1alpha1 -out "$$tmp"; \
	diff -u docs/api.md "$$tmp" || { echo "docs/api.md is stale: run make api-docs"; exit 1; }

##@ Build

.PHONY: build
build: ## Build the netpol2authz binary into bin/, stamped with VERSION and COMMIT.
	go build -ldflags "-X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT)" -o $(LOCALBIN)/netpol2authz .

.PHONY: demo
demo: envtest istiod ## Run the operator on a local control plane with config/samples and show what it does (DEMO_KEEP=1 keeps it running).
	go run ./hack/demo

.PHONY: run
run: manifests generate ## Run the operator against the cluster of your kubeconfig.
	go run . manager

# The image is built by a container engine (docker or podman), not by make's tools.
CONTAINER_TOOL ?= docker
PLATFORMS ?= linux/amd64,linux/arm64

.PHONY: docker-build
docker-build: ## Build the image IMG for the local platform.
	$(CONTAINER_TOOL) build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the image IMG.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: docker-buildx
docker-buildx: ## Build and push IMG for PLATFORMS (cross-compiled: the builder stage runs on the build platform).
	$(CONTAINER_TOOL) buildx build --platform=$(PLATFORMS) --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --push -t $(IMG) .

.PHONY: build-installer
build-installer: manifests generate kustomize ## Render dist/install.yaml (config/default with image IMG), set the chart's version and appVersion from VERSION and sync its CRDs and manager role from config/.
	mkdir -p dist
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=$(IMG)
	"$(KUSTOMIZE)" build config/default > dist/install.yaml
	sed -i.bak -e 's/^version: .*/version: $(CHART_VERSION)/' -e 's/^appVersion: .*/appVersion: "$(VERSION)"/' dist/chart/Chart.yaml && rm dist/chart/Chart.yaml.bak
	hack/sync-chart.sh

##@ Deployment

ignore-not-found ?= false

# A KUBECTL from the environment or the command line is used as is; the pinned
# one is built only when it is the one in use.
KUBECTL_PINNED := $(LOCALBIN)/kubectl-$(KUBE_VERSION)
KUBECTL ?= $(KUBECTL_PINNED)
KUBECTL_DEP := $(if $(filter $(KUBECTL_PINNED),$(KUBECTL)),$(KUBECTL_PINNED))

.PHONY: install
install: manifests kustomize $(KUBECTL_DEP) ## Install the CRDs into the cluster of your kubeconfig.
	"$(KUSTOMIZE)" build config/crd | "$(KUBECTL)" apply --server-side -f -

.PHONY: uninstall
uninstall: kustomize $(KUBECTL_DEP) ## Remove the CRDs (and every NetworkPolicyTranslation). ignore-not-found=true to ignore missing ones.
	"$(KUSTOMIZE)" build config/crd | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

# build-installer and deploy record IMG in config/manager/kustomization.yaml
# (kustomize edit set image), as kubebuilder does: with another IMG, run
# build-installer too, or test/install reports dist/install.yaml as stale.
.PHONY: deploy
deploy: manifests kustomize $(KUBECTL_DEP) ## Deploy the operator (config/default, image IMG) to the cluster of your kubeconfig.
	cd config/manager && "$(KUSTOMIZE)" edit set image controller=$(IMG)
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" apply --server-side -f -

.PHONY: undeploy
undeploy: kustomize $(KUBECTL_DEP) ## Remove the operator, its namespace and CRDs. ignore-not-found=true to ignore missing ones.
	"$(KUSTOMIZE)" build config/default | "$(KUBECTL)" delete --ignore-not-found=$(ignore-not-found) -f -

##@ Dependencies

$(LOCALBIN):
	mkdir -p $(LOCALBIN)

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Build controller-gen.
$(CONTROLLER_GEN): | $(LOCALBIN)
	$(call go-install-tool,$(CONTROLLER_GEN),sigs.k8s.io/controller-tools/cmd/controller-gen,$(CONTROLLER_TOOLS_VERSION))

.PHONY: kustomize
kustomize: $(KUSTOMIZE) ## Build kustomize.
$(KUSTOMIZE): | $(LOCALBIN)
	$(call go-install-tool,$(KUSTOMIZE),sigs.k8s.io/kustomize/kustomize/v5,$(KUSTOMIZE_VERSION))

.PHONY: helm
helm: $(HELM) ## Build helm (renders dist/chart in the tests).
$(HELM): | $(LOCALBIN)
	$(call go-install-tool,$(HELM),helm.sh/helm/$(firstword $(subst ., ,$(HELM_VERSION)))/cmd/helm,$(HELM_VERSION))

.PHONY: istiod
istiod: $(ISTIOD) ## Build istiod (pilot-discovery) for the end-to-end tests and the demo (once per version).
$(ISTIOD): | $(LOCALBIN)
	@echo "istiod: building pilot-discovery $(ISTIO_VERSION) from source (first run only; ~10 min on 2 cores)"
	mkdir -p "$(dir $(ISTIOD))"
	cd hack/tools/istio && go build -trimpath -ldflags="-s -w" -o "$(ISTIOD).tmp" istio.io/istio/pilot/cmd/pilot-discovery
	mv "$(ISTIOD).tmp" "$(ISTIOD)"

.PHONY: promtool
promtool: $(PROMTOOL) ## Build promtool (checks and tests the chart's alerting rules).
$(PROMTOOL): | $(LOCALBIN)
	cd hack/tools/prometheus && go build -trimpath -o "$(PROMTOOL)" github.com/prometheus/prometheus/cmd/promtool

.PHONY: kube-api-linter
kube-api-linter: $(KUBE_API_LINTER) ## Build kube-api-linter (make lint-api).
$(KUBE_API_LINTER): | $(LOCALBIN)
	cd hack/tools/kube-api-linter && go build -trimpath -o "$(KUBE_API_LINTER).tmp" sigs.k8s.io/kube-api-linter/cmd/golangci-lint-kube-api-linter
	mv "$(KUBE_API_LINTER).tmp" "$(KUBE_API_LINTER)"

.PHONY: golangci-lint
golangci-lint: $(GOLANGCI_LINT) ## Build golangci-lint (make lint).
$(GOLANGCI_LINT): | $(LOCALBIN)
	cd hack/tools/golangci-lint && go build -trimpath -o "$(GOLANGCI_LINT).tmp" github.com/golangci/golangci-lint/v2/cmd/golangci-lint
	mv "$(GOLANGCI_LINT).tmp" "$(GOLANGCI_LINT)"

.PHONY: kubectl
kubectl: $(KUBECTL_PINNED) ## Build kubectl of the same Kubernetes release, to explore the demo's control plane.
$(KUBECTL_PINNED): | $(LOCALBIN)
	cd hack/tools/kubernetes && go build -trimpath -o "$(KUBECTL_PINNED)" k8s.io/kubernetes/cmd/kubectl

.PHONY: envtest
envtest: ## Build kube-apiserver and etcd for the tests (once per version) unless KUBEBUILDER_ASSETS is set.
ifeq ($(BUILD_ENVTEST),1)
	@if [ -x "$(ENVTEST_DIR)/kube-apiserver" ] && [ -x "$(ENVTEST_DIR)/etcd" ]; then \
		echo "envtest: using $(ENVTEST_DIR)"; \
	else \
		echo "envtest: building kube-apiserver $(KUBE_VERSION) and etcd $(ETCD_VERSION) from source (first run only; ~7 min on 2 cores)"; \
		mkdir -p "$(ENVTEST_DIR).tmp"; \
		( cd hack/tools/etcd && go build -trimpath -o "$(ENVTEST_DIR).tmp/etcd" . ); \
		( cd hack/tools/kubernetes && go build -trimpath -o "$(ENVTEST_DIR).tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver ); \
		rm -rf "$(ENVTEST_DIR)"; mv "$(ENVTEST_DIR).tmp" "$(ENVTEST_DIR)"; \
	fi
else
	@echo "envtest: using KUBEBUILDER_ASSETS=$(KUBEBUILDER_ASSETS)"
endif

# go-install-tool builds package $(2) at version $(3) into the versioned path $(1).
define go-install-tool
@[ -f "$(1)" ] || { \
set -e; \
echo "building $(2)@$(3)"; \
tmp=$$(mktemp -d); \
GOBIN=$$tmp go install $(2)@$(3); \
mv "$$tmp"/* "$(1)"; \
rm -rf "$$tmp"; \
}
endef
