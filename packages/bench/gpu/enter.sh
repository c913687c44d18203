# Sourced by the GPU scripts here: `source packages/bench/gpu/enter.sh; enter_gpu [.gpu]` sources
# <dir>/enter.sh (made by ../shared/gpu/pack.sh: it unpacks the runtime, Dawn and the Vulkan loader)
# under a lock, so that scripts started side by side do not unpack at once (session 29: one of two
# found /tmp/gpu/node half written and got "Permission denied").
enter_gpu() {
  local dir=${1:-.gpu}
  if command -v flock > /dev/null; then
    exec 9> /tmp/memmamba-gpu-enter.lock
    flock 9
    source "$dir/enter.sh"
    flock -u 9
    exec 9>&-
  else
    source "$dir/enter.sh"
  fi
}
