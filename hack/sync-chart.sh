#!/usr/bin/env bash
# Copies what `make manifests` generates into the Helm chart (dist/chart), as
# templates: each CRD of config/crd/bases, behind crd.enable and with the
# crd.keep policy, and the rules of the manager ClusterRole of
# config/rbac/role.yaml. `make build-installer` runs it; test/install fails
# when the chart's copies differ from config/.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
chart=dist/chart/templates

rm -f "$chart"/crd/*.yaml
mkdir -p "$chart/crd"
for src in config/crd/bases/*.yaml; do
  name="$(awk '/^  name: / { print $2; exit }' "$src")"
  dst="$chart/crd/$name.yaml"
  {
    echo "{{- /* Generated from $src by hack/sync-chart.sh: do not edit. */ -}}"
    echo '{{- if .Values.crd.enable }}'
    awk '
      NR == 1 && $0 == "---" { next }
      # The first metadata fields: annotations (controller-gen writes them)
      # and name, before which the labels go.
      !annotated && $0 == "  annotations:" {
        print
        print "    {{- if .Values.crd.keep }}"
        print "    helm.sh/resource-policy: keep"
        print "    {{- end }}"
        annotated = 1
        next
      }
      !labelled && /^  name: / {
        print "  labels:"
        print "    {{- include \"netpol2authz.labels\" . | nindent 4 }}"
        labelled = 1
      }
      { print }
      END { if (!annotated || !labelled) { print "sync-chart: unexpected CRD layout in " FILENAME > "/dev/stderr"; exit 1 } }
    ' "$src"
    echo '{{- end }}'
  } >"$dst.tmp"
  mv "$dst.tmp" "$dst"
  echo "synced $dst"
done

src=config/rbac/role.yaml
dst="$chart/rbac/manager-role.yaml"
{
  echo "{{- /* Generated from $src by hack/sync-chart.sh: do not edit. */ -}}"
  cat <<'TPL'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: {{ include "netpol2authz.resourceName" (dict "suffix" "manager-role" "context" $) }}
  labels:
    {{- include "netpol2authz.labels" . | nindent 4 }}
TPL
  sed -n '/^rules:/,$p' "$src"
} >"$dst.tmp"
mv "$dst.tmp" "$dst"
echo "synced $dst"
