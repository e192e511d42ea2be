#!/usr/bin/env bash
# Install the pinned tools that render and validate deploy/k8s into .tools/bin, built from
# the Go module proxy: kustomize (the engine behind `kubectl kustomize`) and kubeconform.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
KUSTOMIZE=v5.5.0
KUBECONFORM=v0.6.7
BIN="$ROOT/.tools/bin"
mkdir -p "$BIN"
command -v go >/dev/null || { echo "Go is needed to build kustomize and kubeconform (apt-get install golang-go)" >&2; exit 1; }
install() {  # a stamp per version: binaries built this way report no version of their own
  local name="$1" module="$2" version="$3"
  [ -x "$BIN/$name" ] && [ -f "$BIN/.$name-$version" ] && return
  GOBIN="$BIN" go install "$module@$version"
  rm -f "$BIN/.$name-"*; touch "$BIN/.$name-$version"
}
install kustomize sigs.k8s.io/kustomize/kustomize/v5 "$KUSTOMIZE"
install kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM"
