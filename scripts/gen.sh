#!/usr/bin/env bash
# Regenerates the Go and TypeScript code in gen/ from proto/ with buf and
# local plugins (no network beyond the Go module proxy and npm registry).
# With --check it generates into a temporary directory and fails when the
# committed gen/ differs: the "generated code is current" gate of CI.
set -euo pipefail
cd "$(dirname "$0")/.."

tools="$PWD/.cache/tools"
mkdir -p "$tools/bin"
export PATH="$tools/bin:$tools/node_modules/.bin:$PATH"

need_install=0
for bin in protoc-gen-go protoc-gen-connect-go; do
  [ -x "$tools/bin/$bin" ] || need_install=1
done
[ -x "$tools/node_modules/.bin/buf" ] && [ -x "$tools/node_modules/.bin/protoc-gen-es" ] || need_install=1
if [ "$need_install" = 1 ]; then
  if ! command -v npm >/dev/null 2>&1; then
    echo "gen: npm is needed to install buf and protoc-gen-es (apt-get install nodejs npm)" >&2
    exit 3
  fi
  echo "gen: installing buf 1.75.0, protoc-gen-es 2.17.0, protoc-gen-go 1.36.12, protoc-gen-connect-go 1.21.1 into .cache/tools" >&2
  GOBIN="$tools/bin" go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
  GOBIN="$tools/bin" go install connectrpc.com/connect/cmd/protoc-gen-connect-go@v1.21.1
  npm install --silent --no-fund --no-audit --prefix "$tools" @bufbuild/buf@1.75.0 @bufbuild/protoc-gen-es@2.17.0 >/dev/null
fi

buf lint
if [ "${1:-}" = "--check" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  sed "s#out: gen/#out: $tmp/gen/#" buf.gen.yaml > "$tmp/buf.gen.yaml"
  buf generate --template "$tmp/buf.gen.yaml"
  if ! diff -r gen "$tmp/gen" >/dev/null; then
    diff -r gen "$tmp/gen" | head -40 >&2
    echo "gen: generated code in gen/ is stale: run 'make generate' and commit the result" >&2
    exit 1
  fi
  echo "gen: generated code is current"
else
  rm -rf gen
  buf generate
  echo "gen: regenerated gen/"
fi
