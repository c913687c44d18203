#!/usr/bin/env bash
# Packs a runtime, Dawn and the Vulkan loader into .gpu/ (../shared/gpu/pack.sh) and bundles each
# entry into .gpu/<name>.mjs with esbuild, reading the workspace packages from their TypeScript
# sources (the `@memmamba/source` export condition: the packages' `import` condition points at
# dist/, which only `npm pack` builds).
#   RUNTIME=node|bun|deno scripts/gpu-bundle.sh packages/bench/src/train-throughput.ts ...
# GPU_BUNDLE_MINIFY=1 minifies the bundles (about half the size; for when the 64 MiB that travel are tight).
# GPU_BUNDLE_SPLIT=1 builds the entries as one code-split set (their shared code once; with Node's
# runtime packed, three minified model benchmarks fit only so since session 18).
set -euo pipefail
for a in "$@"; do
  case "$a" in
    -h|--help)
      cat <<'USAGE'
Usage: [RUNTIME=node|bun|deno] [GPU_BUNDLE_MINIFY=1] [GPU_BUNDLE_SPLIT=1] scripts/gpu-bundle.sh ENTRY.ts...

Packs a runtime, Dawn and the Vulkan loader into .gpu/ (../shared/gpu/pack.sh), then bundles
each ENTRY into .gpu/<name>.mjs with esbuild (the workspace packages from their TypeScript sources).
  RUNTIME=...          the runtime pack.sh packs
  GPU_BUNDLE_MINIFY=1  minified bundles (about half the size)
  GPU_BUNDLE_SPLIT=1   one code-split build of all entries (their shared code once)
  -h, --help           this text (nothing is packed or built)
USAGE
      exit 0 ;;
  esac
done
cd "$(dirname "$0")/.."
NODE_PATH="$PWD/tools/node_modules" PATH="$PWD/tools/node_modules/.bin:$PATH" bash ../shared/gpu/pack.sh
if [ -n "${GPU_BUNDLE_SPLIT:-}" ]; then
  # one code-split build: .gpu/<name>.mjs per entry plus the chunks they share (three model
  # benchmarks: ~1.1 MB in all, minified, against ~1.07 MB each as separate bundles); each entry
  # lands at .gpu/<name>.mjs also when the entries lie in different folders
  node_modules/.bin/esbuild "$@" --bundle --splitting --platform=node --format=esm --target=node20 \
    --conditions=@memmamba/source --external:webgpu ${GPU_BUNDLE_MINIFY:+--minify} --outdir=.gpu \
    --out-extension:.js=.mjs --entry-names=[name] --chunk-names=chunk-[hash] --log-level=warning
else
  for entry in "$@"; do
    name=$(basename "${entry%.*}")
    node_modules/.bin/esbuild "$entry" --bundle --platform=node --format=esm --target=node20 \
      --conditions=@memmamba/source --external:webgpu ${GPU_BUNDLE_MINIFY:+--minify} --outfile=".gpu/$name.mjs" --log-level=warning
  done
fi
du -sh .gpu | awk '{print "gpu-bundle: .gpu is " $1 " (at most 64 MiB travels with the working tree)"}'
