# Builds and runs ssm_probe.cu on the GPU machine (nvcc, ncu from /usr/local/cuda); outputs in $OUT.
#   bash packages/bench/gpu/cuda/ssm_probe.sh [ncu] [vulkan]
# ncu: Nsight Compute sections of one launch of pass 1 and pass 3 (8 steps prefetched, __expf) at
# batch 1, L 64K, Di 1024; vulkan: try ncu on the WebGPU forward itself (.gpu/webgpu-scan.mjs carried).
set -u
export PATH=/usr/local/cuda/bin:$PATH
D=packages/bench/gpu/cuda
nvcc -O3 -arch=sm_90 -lineinfo -Xptxas -v -o /tmp/ssm_probe $D/ssm_probe.cu > $OUT/build.txt 2>&1 || { cat $OUT/build.txt; exit 1; }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader > $OUT/probe.txt
for s in "1 65536 1024 128" "8 2048 512 64" "4 2048 1536 64"; do /tmp/ssm_probe $s >> $OUT/probe.txt 2>&1; done
SEC="--section LaunchStats --section Occupancy --section WarpStateStats --section SpeedOfLight --section SchedulerStats"
for a in "$@"; do
  case $a in
  ncu)
    # launches: stream u1, stream u8 pf, pass1 u1, pass1 u4, pass1 u8 pf, pass3 u1, pass3 u8 pf, 10 each
    timeout 240 ncu --launch-skip 40 --launch-count 1 $SEC --section MemoryWorkloadAnalysis /tmp/ssm_probe 1 65536 1024 128 > $OUT/ncu-pass1.txt 2>&1
    timeout 120 ncu --launch-skip 60 --launch-count 1 $SEC /tmp/ssm_probe 1 65536 1024 128 > $OUT/ncu-pass3.txt 2>&1 ;;
  vulkan)
    source .gpu/enter.sh > /dev/null 2>&1
    timeout 200 ncu --target-processes all --launch-skip 20 --launch-count 2 $SEC node .gpu/webgpu-scan.mjs --lengths 4096 --scan-algo lookback --ssm 1x65536x1024x16 --ssm-fwd-algo lookback --ssm-bwd-algo scratch --runs 1 --warmup-ms 50 > $OUT/ncu-vulkan.txt 2>&1 ;;
  esac
done
