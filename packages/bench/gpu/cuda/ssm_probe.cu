// A CUDA mirror of the WebGPU selective scan forward's chunk passes (ssm-forward.ts: fwdChunkWgsl
// passes 1 and 3 at N = 16, vec4 B / C), to read with Nsight Compute what the WGSL kernels wait on
// (Dawn's Vulkan pipelines cannot be profiled by ncu). Not part of the library: a probe, built and
// run on the GPU machine by ssm_probe.sh. Layout and thread mapping as the WGSL: x, delta [B, L, Di],
// A [Di, 16], B, C [B, L, 16]; a thread per (b, chunk, channel), 64-thread blocks, channels fastest.
//   pass 1: the chunk from h = 0, its end state into W (the "aggregate");
//   pass 3: the chunk from W's state, y_t = C_t · h_t written;
//   stream: the same loads of delta and x, no recurrence (the access pattern's own ceiling).
// Each in blocks of U steps whose loads come first, prefetched one block ahead or not (PF).
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <vector>
#include <cuda_runtime.h>

#define CK(e) do { cudaError_t r_ = (e); if (r_ != cudaSuccess) { fprintf(stderr, "%s:%d %s\n", __FILE__, __LINE__, cudaGetErrorString(r_)); exit(1); } } while (0)

// the decay's exp: E 0 __expf (ex2.approx of x·log2 e, denormals kept: extra instructions), 1 ex2.approx.ftz
// of a pre-scaled argument (A holds A·log2 e), 2 none (max(0, 1 + v/100): the instruction mix without MUFU)
__device__ __forceinline__ float ex2ftz(float v) { float r; asm("ex2.approx.ftz.f32 %0, %1;" : "=f"(r) : "f"(v)); return r; }
template <int E> __device__ __forceinline__ float fexp(float v) {
  if (E == 0) return __expf(v);
  if (E == 1) return ex2ftz(v);
  return fmaxf(0.f, 1.f + 0.01f * v);
}
template <int E> __device__ __forceinline__ float4 fexp4(float4 v) { return make_float4(fexp<E>(v.x), fexp<E>(v.y), fexp<E>(v.z), fexp<E>(v.w)); }
__device__ __forceinline__ float4 fma4(float4 a, float4 b, float s, float4 c) {
  return make_float4(a.x * b.x + s * c.x, a.y * b.y + s * c.y, a.z * b.z + s * c.z, a.w * b.w + s * c.w);
}
__device__ __forceinline__ float4 scale4(float s, float4 a) { return make_float4(s * a.x, s * a.y, s * a.z, s * a.w); }
__device__ __forceinline__ float dot4(float4 a, float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }

// MODE 0: stream, 1: pass 1, 3: pass 3
// SP: a channel's 16 states split over SP adjacent threads (1, or 2: 8 states each, fewer registers
// a thread; the pair loads the same Δ_t, x_t and adds its halves of y_t by a shuffle)
template <int MODE, int U, bool PF, int E = 0, int SP = 1>
__global__ void __launch_bounds__(64) chunkPass(const float* __restrict__ x, const float* __restrict__ delta, const float4* __restrict__ A4,
                                                const float4* __restrict__ B4, const float4* __restrict__ C4, float4* __restrict__ W,
                                                float* __restrict__ y, int L, int Di, int T, int nC, int BDi) {
  constexpr int NQ = 4 / SP; // state vec4s a thread
  const int gt = blockIdx.x * 64 + threadIdx.x, part = gt % SP, g = gt / SP;
  if (g >= BDi * nC) return; // (BDi·nC·SP is a multiple of 64 here: both threads of a pair stay)
  const int i = g % Di, c = (g / Di) % nC, b = g / (Di * nC);
  const int t0 = c * T, t1 = min(L, t0 + T);
  float4 A[NQ], h[NQ];
  for (int q = 0; q < NQ; q++) {
    A[q] = A4[i * 4 + part * NQ + q];
    h[q] = MODE == 3 ? W[(size_t)g * 4 + part * NQ + q] : make_float4(0.f, 0.f, 0.f, 0.f);
  }
  float sd = 0.f;
  float pdt[U], pxv[U];
  if (PF) {
    for (int j = 0; j < U; j++) {
      size_t r = ((size_t)b * L + min(t0 + j, t1 - 1)) * Di + i;
      pdt[j] = delta[r]; pxv[j] = x[r];
    }
  }
  for (int tb = t0; tb < t1; tb += U) {
    float dt[U], xv[U];
#pragma unroll
    for (int j = 0; j < U; j++) {
      if (PF) { dt[j] = pdt[j]; xv[j] = pxv[j]; }
      else { size_t r = ((size_t)b * L + min(tb + j, t1 - 1)) * Di + i; dt[j] = delta[r]; xv[j] = x[r]; }
    }
    if (PF) {
#pragma unroll
      for (int j = 0; j < U; j++) {
        size_t r = ((size_t)b * L + min(tb + U + j, t1 - 1)) * Di + i;
        pdt[j] = delta[r]; pxv[j] = x[r];
      }
    }
#pragma unroll
    for (int j = 0; j < U; j++) {
      const int t = tb + j;
      if (t < t1) {
        if (MODE == 0) { sd += dt[j] * xv[j]; continue; }
        const float dtx = dt[j] * xv[j];
        const size_t bn = ((size_t)b * L + t) * 4;
        float acc = 0.f;
#pragma unroll
        for (int q = 0; q < NQ; q++) {
          h[q] = fma4(fexp4<E>(scale4(dt[j], A[q])), h[q], dtx, B4[bn + part * NQ + q]);
          if (MODE == 3) acc += dot4(h[q], C4[bn + part * NQ + q]);
        }
        if (MODE == 3 && SP == 2) acc += __shfl_xor_sync(0xffffffffu, acc, 1);
        if (MODE == 3 && part == 0) y[((size_t)b * L + t) * Di + i] = acc;
        else sd += dt[j];
      }
    }
  }
  if (MODE == 1) for (int q = 0; q < NQ; q++) W[(size_t)g * 4 + part * NQ + q] = h[q];
  if (MODE == 0) W[g] = make_float4(sd, 0.f, 0.f, 0.f);
}

struct Bufs { float *x, *d, *y; float4 *A, *B, *C, *W; };

template <int MODE, int U, bool PF, int E = 0, int SP = 1>
float timeIt(const Bufs& m, int Bn, int L, int Di, int T, int reps) {
  const int nC = (L + T - 1) / T, BDi = Bn * Di, threads = BDi * nC * SP;
  dim3 grid((threads + 63) / 64);
  auto go = [&] { chunkPass<MODE, U, PF, E, SP><<<grid, 64>>>(m.x, m.d, m.A, m.B, m.C, m.W, m.y, L, Di, T, nC, BDi); };
  go(); CK(cudaDeviceSynchronize());
  cudaEvent_t e0, e1; CK(cudaEventCreate(&e0)); CK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int r = 0; r < reps; r++) {
    CK(cudaEventRecord(e0)); go(); CK(cudaEventRecord(e1)); CK(cudaEventSynchronize(e1));
    float t; CK(cudaEventElapsedTime(&t, e0, e1)); ms.push_back(t);
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

int main(int argc, char** argv) {
  const int Bn = argc > 1 ? atoi(argv[1]) : 1, L = argc > 2 ? atoi(argv[2]) : 65536, Di = argc > 3 ? atoi(argv[3]) : 1024;
  const int T = argc > 4 ? atoi(argv[4]) : 128, reps = 9;
  const size_t nx = (size_t)Bn * L * Di, nb = (size_t)Bn * L * 16, nC = (L + T - 1) / T;
  Bufs m;
  CK(cudaMalloc(&m.x, nx * 4)); CK(cudaMalloc(&m.d, nx * 4)); CK(cudaMalloc(&m.y, nx * 4));
  CK(cudaMalloc(&m.A, Di * 16 * 4)); CK(cudaMalloc(&m.B, nb * 4)); CK(cudaMalloc(&m.C, nb * 4));
  CK(cudaMalloc(&m.W, (size_t)Bn * Di * nC * 16 * 4));
  std::vector<float> h(std::max(nx, (size_t)Di * 16));
  for (size_t k = 0; k < nx; k++) h[k] = 0.01f + 0.02f * ((k * 2654435761u) % 1000) / 1000.f;
  CK(cudaMemcpy(m.x, h.data(), nx * 4, cudaMemcpyHostToDevice)); CK(cudaMemcpy(m.d, h.data(), nx * 4, cudaMemcpyHostToDevice));
  CK(cudaMemcpy(m.B, h.data(), nb * 4, cudaMemcpyHostToDevice)); CK(cudaMemcpy(m.C, h.data(), nb * 4, cudaMemcpyHostToDevice));
  for (int k = 0; k < Di * 16; k++) h[k] = -1.f - (k % 16);
  CK(cudaMemcpy(m.A, h.data(), Di * 16 * 4, cudaMemcpyHostToDevice));
  CK(cudaMemset(m.W, 0, (size_t)Bn * Di * nC * 16 * 4));
  const double GB1 = 2.0 * nx * 4 / 1e9, GB3 = 3.0 * nx * 4 / 1e9;
  printf("shape B %d L %d Di %d N 16, chunk T %d (%zu chunks, %zu threads)\n", Bn, L, Di, T, nC, (size_t)Bn * Di * nC);
  printf("%-22s %9s %9s\n", "kernel", "ms", "GB/s");
#define ROW(name, MODE, U, PF, GB, ...) { float t = timeIt<MODE, U, PF, ##__VA_ARGS__>(m, Bn, L, Di, T, reps); printf("%-22s %9.4f %9.1f\n", name, t, GB / (t * 1e-3)); }
  ROW("stream u1", 0, 1, false, GB1);
  ROW("stream u8 pf", 0, 8, true, GB1);
  ROW("pass1 u1", 1, 1, false, GB1);
  ROW("pass1 u4", 1, 4, false, GB1);
  ROW("pass1 u8 pf", 1, 8, true, GB1);
  ROW("pass3 u1", 3, 1, false, GB3);
  ROW("pass3 u8 pf", 3, 8, true, GB3);
  ROW("pass1 u1 ex2.ftz", 1, 1, false, GB1, 1);
  ROW("pass1 u8 pf ex2.ftz", 1, 8, true, GB1, 1);
  ROW("pass1 u1 no exp", 1, 1, false, GB1, 2);
  ROW("pass1 u8 pf no exp", 1, 8, true, GB1, 2);
  ROW("pass3 u8 pf ex2.ftz", 3, 8, true, GB3, 1);
  ROW("pass3 u8 pf no exp", 3, 8, true, GB3, 2);
  ROW("pass1 u8 pf split 2", 1, 8, true, GB1, 0, 2);
  ROW("pass3 u8 pf split 2", 3, 8, true, GB3, 0, 2);
  ROW("pass1 u1 split 2", 1, 1, false, GB1, 0, 2);
  ROW("pass3 u1 split 2", 3, 1, false, GB3, 0, 2);
  return 0;
}
