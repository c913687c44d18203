#!/usr/bin/env bash
# Packs a runtime, Dawn and the Vulkan loader into .gpu/ (../shared/gpu/pack.sh) and bundles each
# entry into .gpu/<name>.mjs with esbuild, reading the workspace packages from their TypeScript
# sources (the `@memmamba/source` export condition: the packages' `import` condition points at
# dist/, which only `npm pack` builds).
#   RUNTIME=node|bun|deno scripts/gpu-bundle.sh packages/bench/src/train-throughput.ts ...
# GPU_BUNDLE_MINIFY=1 minifies the bundles (about half the size; for when the 64 MiB that travel are tight).
set -euo pipefail
cd "$(dirname "$0")/.."
NODE_PATH="$PWD/tools/node_modules" PATH="$PWD/tools/node_modules/.bin:$PATH" bash ../shared/gpu/pack.sh
for entry in "$@"; do
  name=$(basename "${entry%.*}")
  node_modules/.bin/esbuild "$entry" --bundle --platform=node --format=esm --target=node20 \
    --conditions=@memmamba/source --external:webgpu ${GPU_BUNDLE_MINIFY:+--minify} --outfile=".gpu/$name.mjs" --log-level=warning
done
du -sh .gpu | awk '{print "gpu-bundle: .gpu is " $1 " (at most 64 MiB travels with the working tree)"}'
