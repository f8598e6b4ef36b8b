// Training-mode BatchNorm over groups of images, fused with the ReLU (and the residual add) after it, for
// channels_last CPU tensors in fp32 or bf16. Built at first use by superconv.models.fused_bn (torch's
// cpp_extension); registered as torch.ops.superconv_bn.{forward,backward}, the kernels, and bn_act, which wraps
// them in a C++ autograd node and is what models call.
//
// Why: on a 2-core CPU the BN layers of the paper's ResNets cost ~30% of a bf16 training step, more than
// their arithmetic: PyTorch runs one native batch_norm per group, concatenates the groups, then a separate
// ReLU pass (and threshold_backward, a split and a concatenation in the backward). Here each group is one
// block of rows of the [N*H*W, C] channels_last matrix. Forward: one pass for both moments (about the group's
// first row, so they do not cancel), one pass writing relu(x * scale + shift [+ residual]). Backward: one pass
// for the two sums, one writing dx (and the residual's gradient). Measured on a 2-core AVX2 EPYC, fp32,
// forward + backward of one layer: 2.2-3x faster than the unfused ops (ResNet-56 widths, groups of 16 of 128).
//
// Numerics: statistics and all sums are accumulated in fp32 within a chunk of rows and in double across
// chunks; bf16 outputs are rounded to nearest even, as PyTorch's conversion does.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#if defined(__AVX2__) && !defined(SUPERCONV_BN_GENERIC)
#include <immintrin.h>
#endif

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int64_t kChunkRows = 256;  // rows summed in fp32 before they join the double total
// Rows per chunk of the vector reductions, walked once per block of 8 channels: 64 rows of the 3 tensors the
// backward's reduction reads stay in L1 (<= 48 KB at C = 64 fp32) between the blocks.
constexpr int64_t kVecRows = 64;

inline float load(const float* p, int64_t i) { return p[i]; }
inline float load(const uint16_t* p, int64_t i) {
  uint32_t bits = static_cast<uint32_t>(p[i]) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}
inline void store(float* p, int64_t i, float v) { p[i] = v; }
inline void store(uint16_t* p, int64_t i, float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, sizeof bits);
  uint32_t rounded = (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;  // round to nearest even
  p[i] = std::isnan(v) ? static_cast<uint16_t>(0x7fc0) : static_cast<uint16_t>(rounded);
}

// Scalar versions (any C): the fallback for channel counts that are not a multiple of 8.

// Rows [r0, r1) of a [rows, C] matrix: per channel, the sum of (x - shift) and of (x - shift)^2, into s1, s2.
// One pass for both moments; the shift (the group's first row) keeps E[(x-s)^2] - E[x-s]^2 from cancelling
// when the mean is large against the spread, as a plain sum of squares would.
template <typename T>
void moments(const T* __restrict__ x, int64_t C, int64_t r0, int64_t r1, const float* __restrict__ shift,
             double* __restrict__ s1, double* __restrict__ s2) {
  std::vector<float> p1(C), p2(C);
  for (int64_t a = r0; a < r1; a += kChunkRows) {
    const int64_t b = std::min(r1, a + kChunkRows);
    std::fill(p1.begin(), p1.end(), 0.f);
    std::fill(p2.begin(), p2.end(), 0.f);
    for (int64_t r = a; r < b; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const float v = load(x + r * C, c) - shift[c];
        p1[c] += v;
        p2[c] += v * v;
      }
    for (int64_t c = 0; c < C; ++c) {
      s1[c] += p1[c];
      s2[c] += p2[c];
    }
  }
}

// Rows [r0, r1): sum of dz and of dz * (x - mean) per channel, dz = dy masked by y > 0 when RELU.
template <typename T, bool RELU>
void grad_sums(const T* __restrict__ dy, const T* __restrict__ y, const T* __restrict__ x, int64_t C, int64_t r0,
               int64_t r1, const float* __restrict__ mean, double* __restrict__ sum_dz,
               double* __restrict__ sum_dzx) {
  std::vector<float> q1(C), q2(C);
  for (int64_t a = r0; a < r1; a += kChunkRows) {
    const int64_t b = std::min(r1, a + kChunkRows);
    std::fill(q1.begin(), q1.end(), 0.f);
    std::fill(q2.begin(), q2.end(), 0.f);
    for (int64_t r = a; r < b; ++r)
      for (int64_t c = 0; c < C; ++c) {
        const float d = load(dy + r * C, c);  // loaded unconditionally: a conditional load defeats vectorization
        const float dz = (!RELU || load(y + r * C, c) > 0.f) ? d : 0.f;
        q1[c] += dz;
        q2[c] += dz * (load(x + r * C, c) - mean[c]);
      }
    for (int64_t c = 0; c < C; ++c) {
      sum_dz[c] += q1[c];
      sum_dzx[c] += q2[c];
    }
  }
}

// Vector versions (C a multiple of 8: the paper's 16/32/64). GCC vector extensions, 8 floats per vector
// (AVX2; AVX-512 machines run them too). Each chunk of kChunkRows rows (<= 64 KB: in L1/L2) is walked once per
// block of 8 channels, with 4 rows in flight, so the partial sums stay in registers and consecutive rows do
// not wait on each other. (Plain loops over a run-time C kept the sums in memory, each row waiting on the
// previous row's store: the forward measured 2x slower than PyTorch's own BN kernel.)
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
typedef uint32_t v8u __attribute__((vector_size(32)));
typedef uint16_t v8h __attribute__((vector_size(16)));

// bf16 <-> fp32 for 8 values. The bits of a bf16 are the upper half of the fp32's; rounding to nearest even,
// NaN kept as a quiet NaN. Intrinsics on x86 (AVX2, also on AVX-512 CPUs): GCC lowers the generic versions'
// 16 <-> 32-bit conversions to 4-6 shuffles each way, and those made a bf16 layer 2.5x slower than fp32 (AVX2
// EPYC, one thread); these are 2 instructions per load and 4 for the packing of a store.
#if defined(__AVX2__) && !defined(SUPERCONV_BN_GENERIC)
inline v8f vload(const uint16_t* p) {
  const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  return (v8f)_mm256_slli_epi32(w, 16);
}
inline __m256i vround(v8f v) {  // bf16 bits in the low half of each 32-bit lane
  const __m256i b = (__m256i)v;
  const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(b, 16), _mm256_set1_epi32(1));
  const __m256i r = _mm256_srli_epi32(_mm256_add_epi32(_mm256_add_epi32(b, _mm256_set1_epi32(0x7fff)), lsb), 16);
  const __m256 nan = _mm256_cmp_ps((__m256)v, (__m256)v, _CMP_UNORD_Q);
  return (__m256i)_mm256_blendv_ps((__m256)r, (__m256)_mm256_set1_epi32(0x7fc0), nan);
}
inline void vstore(uint16_t* p, v8f v) {
  const __m256i r = vround(v);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(p), _mm_packus_epi32(_mm256_castsi256_si128(r),
                                                                    _mm256_extracti128_si256(r, 1)));
}
inline v8f vto_bf16(v8f v) { return (v8f)_mm256_slli_epi32(vround(v), 16); }  // v rounded to bf16, as floats
#else
inline v8f vload(const uint16_t* p) {
  v8h h;
  std::memcpy(&h, p, sizeof h);
  const v8u w = __builtin_convertvector(h, v8u) << 16;
  v8f f;
  std::memcpy(&f, &w, sizeof f);
  return f;
}
inline v8u vround(v8f v) {
  v8u b;
  std::memcpy(&b, &v, sizeof b);
  const v8u nan = (v8u)(v != v);
  const v8u r = (b + 0x7fffu + ((b >> 16) & 1u)) >> 16;
  return (r & ~nan) | (nan & 0x7fc0u);
}
inline void vstore(uint16_t* p, v8f v) {
  const v8h h = __builtin_convertvector(vround(v), v8h);
  std::memcpy(p, &h, sizeof h);
}
inline v8f vto_bf16(v8f v) {
  const v8u w = vround(v) << 16;
  v8f f;
  std::memcpy(&f, &w, sizeof f);
  return f;
}
#endif
inline v8f vload(const float* p) {
  v8f v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void vstore(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }
inline v8f vbroadcast(float f) { return v8f{f, f, f, f, f, f, f, f}; }
inline v8f vselect(v8i keep, v8f v) { return (v8f)((v8i)v & keep); }  // v where keep, else +0
inline float lane(v8f v, int j) { return v[j]; }

template <typename T>
void moments_v(const T* __restrict__ x, int64_t C, int64_t r0, int64_t r1, const float* __restrict__ shift,
               double* __restrict__ s1, double* __restrict__ s2) {
  for (int64_t a = r0; a < r1; a += kVecRows) {
    const int64_t b = std::min(r1, a + kVecRows);
    for (int64_t c0 = 0; c0 < C; c0 += 8) {
      const v8f sh = vload(shift + c0);
      v8f a1[4] = {}, a2[4] = {};
      int64_t r = a;
      for (; r + 4 <= b; r += 4)
        for (int u = 0; u < 4; ++u) {
          const v8f v = vload(x + (r + u) * C + c0) - sh;
          a1[u] += v;
          a2[u] += v * v;
        }
      for (; r < b; ++r) {
        const v8f v = vload(x + r * C + c0) - sh;
        a1[0] += v;
        a2[0] += v * v;
      }
      const v8f t1 = (a1[0] + a1[1]) + (a1[2] + a1[3]), t2 = (a2[0] + a2[1]) + (a2[2] + a2[3]);
      for (int j = 0; j < 8; ++j) {
        s1[c0 + j] += lane(t1, j);
        s2[c0 + j] += lane(t2, j);
      }
    }
  }
}

template <typename T, bool RELU>
void grad_sums_v(const T* __restrict__ dy, const T* __restrict__ y, const T* __restrict__ x, int64_t C,
                 int64_t r0, int64_t r1, const float* __restrict__ mean, double* __restrict__ sum_dz,
                 double* __restrict__ sum_dzx) {
  const v8f zero = {};
  for (int64_t a = r0; a < r1; a += kVecRows) {
    const int64_t b = std::min(r1, a + kVecRows);
    for (int64_t c0 = 0; c0 < C; c0 += 8) {
      const v8f m = vload(mean + c0);
      v8f q1[4] = {}, q2[4] = {};
      auto row = [&](int64_t rr, int u) {
        v8f dz = vload(dy + rr * C + c0);
        if (RELU) dz = vselect(vload(y + rr * C + c0) > zero, dz);
        q1[u] += dz;
        q2[u] += dz * (vload(x + rr * C + c0) - m);
      };
      int64_t r = a;
      for (; r + 4 <= b; r += 4)
        for (int u = 0; u < 4; ++u) row(r + u, u);
      for (; r < b; ++r) row(r, 0);
      const v8f t1 = (q1[0] + q1[1]) + (q1[2] + q1[3]), t2 = (q2[0] + q2[1]) + (q2[2] + q2[3]);
      for (int j = 0; j < 8; ++j) {
        sum_dz[c0 + j] += lane(t1, j);
        sum_dzx[c0 + j] += lane(t2, j);
      }
    }
  }
}

// Rows [r0, r1): y = relu(x * scale + shift [+ residual]); the BN output is rounded to bf16 before the add
// in bf16, as the unfused path (a bf16 batch_norm, then an in-place bf16 add) does.
template <typename T, bool RESIDUAL>
void normalize_v(const T* __restrict__ x, const T* __restrict__ res, int64_t C, int64_t r0, int64_t r1,
                 const float* __restrict__ scale, const float* __restrict__ shift, bool relu, T* __restrict__ y) {
  // rows outer, blocks inner: contiguous streams; the factors are reloaded from L1 (no chain to break here)
  const v8f zero = {};
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c0 = 0; c0 < C; c0 += 8) {
      v8f v = vload(x + r * C + c0) * vload(scale + c0) + vload(shift + c0);
      if (RESIDUAL) {
        if (sizeof(T) == 2) v = vto_bf16(v);
        v += vload(res + r * C + c0);
      }
      if (relu) v = vselect(~(v < zero), v);  // NaN stays NaN, as torch.relu keeps it
      vstore(y + r * C + c0, v);
    }
}

// Rows [r0, r1): dx = a * dz - o - b * (x - m) [and dz itself when DZ], per block of 8 channels.
template <typename T, bool RELU, bool DZ>
void grad_input_v(const T* __restrict__ dy, const T* __restrict__ y, const T* __restrict__ x, int64_t C, int64_t r0,
                  int64_t r1, const float* __restrict__ fa, const float* __restrict__ fo,
                  const float* __restrict__ fb, const float* __restrict__ fm, T* __restrict__ dx,
                  T* __restrict__ dz) {
  const v8f zero = {};
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t c0 = 0; c0 < C; c0 += 8) {
      v8f d = vload(dy + r * C + c0);
      if (RELU) d = vselect(vload(y + r * C + c0) > zero, d);
      const v8f xm = vload(x + r * C + c0) - vload(fm + c0);
      vstore(dx + r * C + c0, vload(fa + c0) * d - vload(fo + c0) - vload(fb + c0) * xm);
      if (DZ) vstore(dz + r * C + c0, d);
    }
}

// Rows [r0, r1): dx = a * dz - o - b * (x - m) per channel [and dz itself, the residual's gradient, when DZ].
// __restrict__: in fp32 the outputs and the per-channel factors are all float*; without it GCC must assume
// they overlap and leaves the loop scalar (measured: 8x slower than the bf16 instance).
template <typename T, bool RELU, bool DZ>
void grad_input(const T* __restrict__ dy, const T* __restrict__ y, const T* __restrict__ x, int64_t C, int64_t r0,
                int64_t r1, const float* __restrict__ a, const float* __restrict__ o, const float* __restrict__ b,
                const float* __restrict__ m, T* __restrict__ dx, T* __restrict__ dz) {
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict__ dyr = dy + r * C;
    const T* __restrict__ xr = x + r * C;
    const T* __restrict__ yr = RELU ? y + r * C : nullptr;
    T* __restrict__ dxr = dx + r * C;
    T* __restrict__ dzr = DZ ? dz + r * C : nullptr;
    for (int64_t c = 0; c < C; ++c) {
      const float d = load(dyr, c);
      const float dzv = (!RELU || load(yr, c) > 0.f) ? d : 0.f;
      store(dxr, c, a[c] * dzv - o[c] - b[c] * (load(xr, c) - m[c]));
      if (DZ) store(dzr, c, dzv);
    }
  }
}

// Rows [r0, r1): y = relu(x * scale + shift [+ residual]) per channel.
template <typename T, bool RESIDUAL>
void normalize(const T* __restrict__ x, const T* __restrict__ res, int64_t C, int64_t r0, int64_t r1,
               const float* __restrict__ scale, const float* __restrict__ shift, bool relu, T* __restrict__ y) {
  const float floor = relu ? 0.f : -INFINITY;
  for (int64_t r = r0; r < r1; ++r) {
    const T* __restrict__ xr = x + r * C;
    const T* __restrict__ rr = RESIDUAL ? res + r * C : nullptr;
    T* __restrict__ yr = y + r * C;
    for (int64_t c = 0; c < C; ++c) {
      float v = load(xr, c) * scale[c] + shift[c];
      if (RESIDUAL) {
        if (sizeof(T) == 2) {  // the BN output is rounded to bf16 before the add, as the unfused path does
          uint16_t t;
          store(&t, 0, v);
          v = load(&t, 0);
        }
        v += load(rr, c);
      }
      store(yr, c, v < floor ? 0.f : v);
    }
  }
}

// Work items: `parts` slices of each of the k groups; at least as many items as threads.
int64_t parts_per_group(int64_t k, int64_t rows_per_group) {
  const int64_t threads = at::get_num_threads();
  int64_t parts = (threads + k - 1) / k;
  return std::max<int64_t>(1, std::min(parts, rows_per_group / kChunkRows));
}

void check_input(const at::Tensor& x, const char* name) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 4, name, ": a 4-d CPU tensor is required");
  TORCH_CHECK(x.is_contiguous(at::MemoryFormat::ChannelsLast), name, ": channels_last contiguous required");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16, name, ": fp32 or bf16 only");
}

// Row `r` of a [rows, C] matrix as floats: the shift of its group's moments.
template <typename T>
std::vector<float> xp_shift(const T* x, int64_t r, int64_t C) {
  std::vector<float> out(C);
  for (int64_t c = 0; c < C; ++c) out[c] = load(x + r * C, c);
  return out;
}

// Returns y, mean [k, C], invstd [k, C], unbiased variance [k, C] (fp32; the running statistics use it).
template <typename T>
void forward_impl(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor* residual,
                  int64_t group, double eps, bool relu, at::Tensor& y, at::Tensor& mean, at::Tensor& invstd,
                  at::Tensor& var) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const int64_t k = N / group, rows = group * HW;
  const int64_t parts = parts_per_group(k, rows);
  const int64_t span = (rows + parts - 1) / parts;
  const T* xp = reinterpret_cast<const T*>(x.const_data_ptr());
  const T* rp = residual ? reinterpret_cast<const T*>(residual->const_data_ptr()) : nullptr;
  T* yp = reinterpret_cast<T*>(y.mutable_data_ptr());
  const float* w = weight.const_data_ptr<float>();
  const float* b = bias.const_data_ptr<float>();
  float* mp = mean.mutable_data_ptr<float>();
  float* ip = invstd.mutable_data_ptr<float>();
  float* vp = var.mutable_data_ptr<float>();
  std::vector<double> acc1(k * parts * C, 0.0), acc2(k * parts * C, 0.0);

  // pass 1: both moments about the group's first row
  const bool vec = C % 8 == 0;
  at::parallel_for(0, k * parts, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = i / parts, r0 = g * rows + (i % parts) * span, r1 = std::min(r0 + span, (g + 1) * rows);
      const std::vector<float> shift = xp_shift(xp, g * rows, C);
      if (vec)
        moments_v(xp, C, r0, r1, shift.data(), &acc1[i * C], &acc2[i * C]);
      else
        moments(xp, C, r0, r1, shift.data(), &acc1[i * C], &acc2[i * C]);
    }
  });
  for (int64_t g = 0; g < k; ++g) {
    const std::vector<float> first = xp_shift(xp, g * rows, C);
    for (int64_t c = 0; c < C; ++c) {
      double s1 = 0, s2 = 0;
      for (int64_t p = 0; p < parts; ++p) {
        s1 += acc1[(g * parts + p) * C + c];
        s2 += acc2[(g * parts + p) * C + c];
      }
      const double d = s1 / rows;  // mean - shift
      const double ss = std::max(0.0, s2 - s1 * d);  // sum of squared deviations from the mean
      mp[g * C + c] = static_cast<float>(first[c] + d);
      ip[g * C + c] = static_cast<float>(1.0 / std::sqrt(ss / rows + eps));
      vp[g * C + c] = static_cast<float>(rows > 1 ? ss / (rows - 1) : ss);
    }
  }
  // pass 2: y = relu(x * scale + shift [+ residual])
  at::parallel_for(0, k * parts, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> scale(C), shift(C);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = i / parts, r0 = g * rows + (i % parts) * span;
      const int64_t r1 = std::min(r0 + span, (g + 1) * rows);
      for (int64_t c = 0; c < C; ++c) {
        scale[c] = w[c] * ip[g * C + c];
        shift[c] = b[c] - mp[g * C + c] * scale[c];
      }
      if (vec && rp != nullptr)
        normalize_v<T, true>(xp, rp, C, r0, r1, scale.data(), shift.data(), relu, yp);
      else if (vec)
        normalize_v<T, false>(xp, rp, C, r0, r1, scale.data(), shift.data(), relu, yp);
      else if (rp != nullptr)
        normalize<T, true>(xp, rp, C, r0, r1, scale.data(), shift.data(), relu, yp);
      else
        normalize<T, false>(xp, rp, C, r0, r1, scale.data(), shift.data(), relu, yp);
    }
  });
}

// The running statistics, in place, from this batch's groups (the mean over groups of their means and unbiased
// variances, m/(m-1)-corrected with m the values of one group): Caffe's sums when `run_weight` is given
// (S <- (1 - momentum) S + new, W <- (1 - momentum) W + 1), else PyTorch's average (R <- R + momentum (new - R),
// torch.lerp_'s formula). Here, not in Python: there the two means and six in-place ops cost ~70 us per layer
// (measured, 2-core EPYC), ~4 ms of a ResNet-56 step. No FMA contraction, so each update rounds as the
// mul_/add_ (lerp_) of the unfused path do.
__attribute__((optimize("fp-contract=off"))) void update_running(const at::Tensor& mean, const at::Tensor& var,
                                                                 const at::Tensor& run_mean, const at::Tensor& run_var,
                                                                 const std::optional<at::Tensor>& run_weight,
                                                                 double momentum) {
  const int64_t k = mean.size(0), C = mean.size(1);
  for (const at::Tensor* t : {&run_mean, &run_var})
    TORCH_CHECK(t->scalar_type() == at::kFloat && t->is_contiguous() && t->numel() == C && t->device().is_cpu(),
                "running statistics: fp32 CPU tensors of C values");
  const float* mp = mean.const_data_ptr<float>();
  const float* vp = var.const_data_ptr<float>();
  float* rm = run_mean.mutable_data_ptr<float>();
  float* rv = run_var.mutable_data_ptr<float>();
  const float m = static_cast<float>(momentum), f = static_cast<float>(1.0 - momentum);
  for (int64_t c = 0; c < C; ++c) {
    double sm = 0, sv = 0;
    for (int64_t g = 0; g < k; ++g) {
      sm += mp[g * C + c];
      sv += vp[g * C + c];
    }
    const float bm = static_cast<float>(sm / k), bv = static_cast<float>(sv / k);
    if (run_weight) {
      const float tm = rm[c] * f, tv = rv[c] * f;
      rm[c] = tm + bm;
      rv[c] = tv + bv;
    } else if (m < 0.5f) {  // torch.lerp_'s two branches
      rm[c] = rm[c] + m * (bm - rm[c]);
      rv[c] = rv[c] + m * (bv - rv[c]);
    } else {
      rm[c] = bm - (bm - rm[c]) * (1.f - m);
      rv[c] = bv - (bv - rv[c]) * (1.f - m);
    }
  }
  if (run_weight) {
    TORCH_CHECK(run_weight->scalar_type() == at::kFloat && run_weight->numel() == 1, "run_weight: one fp32 value");
    float* w = run_weight->mutable_data_ptr<float>();
    const float t = *w * f;
    *w = t + 1.f;
  }
}

std::vector<at::Tensor> bn_forward(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                   const std::optional<at::Tensor>& residual, int64_t group, double eps, bool relu) {
  check_input(x, "x");
  const int64_t N = x.size(0), C = x.size(1);
  TORCH_CHECK(group > 0 && N % group == 0, "group must divide the batch");
  TORCH_CHECK(weight.scalar_type() == at::kFloat && weight.numel() == C && weight.is_contiguous(), "weight");
  TORCH_CHECK(bias.scalar_type() == at::kFloat && bias.numel() == C && bias.is_contiguous(), "bias");
  if (residual) {
    check_input(*residual, "residual");
    TORCH_CHECK(residual->sizes() == x.sizes() && residual->scalar_type() == x.scalar_type(), "residual: as x");
  }
  const int64_t k = N / group;
  at::Tensor y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  auto f32 = x.options().dtype(at::kFloat);
  at::Tensor mean = at::empty({k, C}, f32), invstd = at::empty({k, C}, f32), var = at::empty({k, C}, f32);
  const at::Tensor* r = residual ? &*residual : nullptr;
  if (x.scalar_type() == at::kFloat)
    forward_impl<float>(x, weight, bias, r, group, eps, relu, y, mean, invstd, var);
  else
    forward_impl<uint16_t>(x, weight, bias, r, group, eps, relu, y, mean, invstd, var);
  return {y, mean, invstd, var};
}

// dy, x, y (the forward's output, for the ReLU mask; ignored unless relu), mean, invstd [k, C], weight.
// Returns dx, dweight, dbias, dz (the gradient of the residual: dy masked by y > 0).
template <typename T>
void backward_impl(const at::Tensor& dy, const at::Tensor& x, const at::Tensor& y, const at::Tensor& mean,
                   const at::Tensor& invstd, const at::Tensor& weight, int64_t group, bool relu, bool want_dz,
                   at::Tensor& dx, at::Tensor& dw, at::Tensor& db, at::Tensor& dz) {
  const int64_t N = x.size(0), C = x.size(1), HW = x.size(2) * x.size(3);
  const int64_t k = N / group, rows = group * HW;
  const int64_t parts = parts_per_group(k, rows);
  const int64_t span = (rows + parts - 1) / parts;
  const T* dyp = reinterpret_cast<const T*>(dy.const_data_ptr());
  const T* xp = reinterpret_cast<const T*>(x.const_data_ptr());
  const T* yp = relu ? reinterpret_cast<const T*>(y.const_data_ptr()) : nullptr;
  T* dxp = reinterpret_cast<T*>(dx.mutable_data_ptr());
  T* dzp = want_dz ? reinterpret_cast<T*>(dz.mutable_data_ptr()) : nullptr;
  const float* mp = mean.const_data_ptr<float>();
  const float* ip = invstd.const_data_ptr<float>();
  const float* w = weight.const_data_ptr<float>();
  std::vector<double> acc1(k * parts * C, 0.0), acc2(k * parts * C, 0.0);
  const bool vec = C % 8 == 0;
  at::parallel_for(0, k * parts, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = i / parts, r0 = g * rows + (i % parts) * span;
      const int64_t r1 = std::min(r0 + span, (g + 1) * rows);
      if (vec && relu)
        grad_sums_v<T, true>(dyp, yp, xp, C, r0, r1, mp + g * C, &acc1[i * C], &acc2[i * C]);
      else if (vec)
        grad_sums_v<T, false>(dyp, yp, xp, C, r0, r1, mp + g * C, &acc1[i * C], &acc2[i * C]);
      else if (relu)
        grad_sums<T, true>(dyp, yp, xp, C, r0, r1, mp + g * C, &acc1[i * C], &acc2[i * C]);
      else
        grad_sums<T, false>(dyp, yp, xp, C, r0, r1, mp + g * C, &acc1[i * C], &acc2[i * C]);
    }
  });
  std::vector<float> s_dz(k * C), s_dzx(k * C);
  float* dwp = dw.mutable_data_ptr<float>();
  float* dbp = db.mutable_data_ptr<float>();
  std::vector<double> tw(C, 0.0), tb(C, 0.0);
  for (int64_t g = 0; g < k; ++g)
    for (int64_t c = 0; c < C; ++c) {
      double a = 0, b = 0;
      for (int64_t p = 0; p < parts; ++p) {
        a += acc1[(g * parts + p) * C + c];
        b += acc2[(g * parts + p) * C + c];
      }
      s_dz[g * C + c] = static_cast<float>(a);
      s_dzx[g * C + c] = static_cast<float>(b);
      tb[c] += a;
      tw[c] += b * ip[g * C + c];
    }
  for (int64_t c = 0; c < C; ++c) {
    dwp[c] = static_cast<float>(tw[c]);
    dbp[c] = static_cast<float>(tb[c]);
  }
  // dx = w * invstd * (dz - mean(dz) - (x - mean) * invstd^2 * mean(dz * (x - mean)))
  at::parallel_for(0, k * parts, 1, [&](int64_t i0, int64_t i1) {
    std::vector<float> a(C), b(C), m(C), o(C);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t g = i / parts, r0 = g * rows + (i % parts) * span;
      const int64_t r1 = std::min(r0 + span, (g + 1) * rows);
      for (int64_t c = 0; c < C; ++c) {
        const float is = ip[g * C + c];
        a[c] = w[c] * is;                                             // dz's factor
        b[c] = w[c] * is * is * is * s_dzx[g * C + c] / rows;         // (x - mean)'s factor
        m[c] = mp[g * C + c];
        o[c] = w[c] * is * s_dz[g * C + c] / rows;                    // mean(dz) term
      }
      const float *pa = a.data(), *pb = b.data(), *pm = m.data(), *po = o.data();
      if (vec && relu && dzp != nullptr)
        grad_input_v<T, true, true>(dyp, yp, xp, C, r0, r1, pa, po, pb, pm, dxp, dzp);
      else if (vec && relu)
        grad_input_v<T, true, false>(dyp, yp, xp, C, r0, r1, pa, po, pb, pm, dxp, dzp);
      else if (vec && dzp != nullptr)
        grad_input_v<T, false, true>(dyp, yp, xp, C, r0, r1, pa, po, pb, pm, dxp, dzp);
      else if (vec)
        grad_input_v<T, false, false>(dyp, yp, xp, C, r0, r1, pa, po, pb, pm, dxp, dzp);
      else if (relu && dzp != nullptr)
        grad_input<T, true, true>(dyp, yp, xp, C, r0, r1, pa, po, pb, pm, dxp, dzp);
      else if (relu)
        grad_input<T, true, false>(dyp, yp, xp, C, r0, r1, pa, po, pb, pm, dxp, dzp);
      else if (dzp != nullptr)
        grad_input<T, false, true>(dyp, yp, xp, C, r0, r1, pa, po, pb, pm, dxp, dzp);
      else
        grad_input<T, false, false>(dyp, yp, xp, C, r0, r1, pa, po, pb, pm, dxp, dzp);
    }
  });
}

std::vector<at::Tensor> bn_backward(const at::Tensor& dy_in, const at::Tensor& x, const at::Tensor& y,
                                    const at::Tensor& mean, const at::Tensor& invstd, const at::Tensor& weight,
                                    int64_t group, bool relu, bool want_dz) {
  check_input(x, "x");
  const at::Tensor dy = dy_in.contiguous(at::MemoryFormat::ChannelsLast).to(x.scalar_type());
  if (relu) check_input(y, "y");
  const int64_t C = x.size(1);
  at::Tensor dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  at::Tensor dz = want_dz ? at::empty_like(x, at::MemoryFormat::ChannelsLast) : at::Tensor();
  auto f32 = x.options().dtype(at::kFloat);
  at::Tensor dw = at::empty({C}, f32), db = at::empty({C}, f32);
  if (x.scalar_type() == at::kFloat)
    backward_impl<float>(dy, x, y, mean, invstd, weight, group, relu, want_dz, dx, dw, db, dz);
  else
    backward_impl<uint16_t>(dy, x, y, mean, invstd, weight, group, relu, want_dz, dx, dw, db, dz);
  return {dx, dw, db, want_dz ? dz : at::empty({0}, x.options())};
}

// How many of the intra-op threads a parallel_for over `items` work items ran on. A build without OpenMP compiles
// at::parallel_for to a serial loop (ATen's OpenMP backend is header code, `#pragma omp`): the kernel then ran
// on one thread whatever torch.set_num_threads said (measured: 2 threads = 1). tests/test_fused_bn.py checks it.
int64_t threads_used(int64_t items) {
  std::vector<char> seen(std::max(1, at::get_num_threads()), 0);
  at::parallel_for(0, items, 1, [&](int64_t, int64_t) { seen[at::get_thread_num()] = 1; });
  int64_t n = 0;
  for (char s : seen) n += s;
  return n;
}

// bn_forward, then the running statistics when given: bn_act's forward, with and without autograd.
std::vector<at::Tensor> forward_and_update(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                           const std::optional<at::Tensor>& residual, int64_t group, double eps,
                                           bool relu, const std::optional<at::Tensor>& run_mean,
                                           const std::optional<at::Tensor>& run_var,
                                           const std::optional<at::Tensor>& run_weight, double momentum) {
  auto out = bn_forward(x, weight, bias, residual, group, eps, relu);
  TORCH_CHECK(run_mean.has_value() == run_var.has_value(), "run_mean and run_var: both or neither");
  if (run_mean) update_running(out[1], out[3], *run_mean, *run_var, run_weight, momentum);
  return out;
}

// relu(group_bn(x) [+ residual]) with its gradient: what models call (through fused_bn.group_bn_act). The
// autograd node is C++: as a Python torch.autograd.Function it cost ~40 us more per layer (forward + backward on
// tiny tensors: 220 vs 182 us, 2-core EPYC), ~2 ms of a ResNet-56 step. Saves x, the output (for the
// ReLU mask) and the per-group statistics; returns y, per-group means and unbiased variances (not differentiable).
struct GroupBNAct : public torch::autograd::Function<GroupBNAct> {
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                                                const at::Tensor& weight, const at::Tensor& bias,
                                                const std::optional<at::Tensor>& residual, int64_t group, double eps,
                                                bool relu, const std::optional<at::Tensor>& run_mean,
                                                const std::optional<at::Tensor>& run_var,
                                                const std::optional<at::Tensor>& run_weight, double momentum) {
    at::AutoDispatchBelowADInplaceOrView guard;
    auto out = forward_and_update(x, weight, bias, residual, group, eps, relu, run_mean, run_var, run_weight, momentum);
    ctx->save_for_backward({x, out[0], out[1], out[2], weight});
    ctx->saved_data["group"] = group;
    ctx->saved_data["relu"] = relu;
    ctx->saved_data["has_residual"] = residual.has_value();
    ctx->mark_non_differentiable({out[1], out[3]});
    return {out[0], out[1], out[3]};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const bool has_residual = ctx->saved_data["has_residual"].toBool();
    auto g = bn_backward(grads[0], saved[0], saved[1], saved[2], saved[3], saved[4],
                         ctx->saved_data["group"].toInt(), ctx->saved_data["relu"].toBool(), has_residual);
    const at::Tensor none;
    return {g[0], g[1], g[2], has_residual ? g[3] : none, none, none, none, none, none, none, none};
  }
};

std::vector<at::Tensor> bn_act(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                               const std::optional<at::Tensor>& residual, int64_t group, double eps, bool relu,
                               const std::optional<at::Tensor>& run_mean, const std::optional<at::Tensor>& run_var,
                               const std::optional<at::Tensor>& run_weight, double momentum) {
  return GroupBNAct::apply(x, weight, bias, residual, group, eps, relu, run_mean, run_var, run_weight, momentum);
}

// Below autograd (inference mode): the forward alone.
std::vector<at::Tensor> bn_act_cpu(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                   const std::optional<at::Tensor>& residual, int64_t group, double eps, bool relu,
                                   const std::optional<at::Tensor>& run_mean, const std::optional<at::Tensor>& run_var,
                                   const std::optional<at::Tensor>& run_weight, double momentum) {
  auto out = forward_and_update(x, weight, bias, residual, group, eps, relu, run_mean, run_var, run_weight, momentum);
  return {out[0], out[1], out[3]};
}

}  // namespace

TORCH_LIBRARY(superconv_bn, m) {
  m.def("forward(Tensor x, Tensor weight, Tensor bias, Tensor? residual, int group, float eps, bool relu) -> Tensor[]");
  m.def("backward(Tensor dy, Tensor x, Tensor y, Tensor mean, Tensor invstd, Tensor weight, int group, bool relu, "
        "bool want_dz) -> Tensor[]");
  m.def("bn_act(Tensor x, Tensor weight, Tensor bias, Tensor? residual, int group, float eps, bool relu, "
        "Tensor(a!)? run_mean=None, Tensor(b!)? run_var=None, Tensor(c!)? run_weight=None, float momentum=0.0) -> Tensor[]");
  m.def("threads_used(int items) -> int");
}

TORCH_LIBRARY_IMPL(superconv_bn, Autograd, m) { m.impl("bn_act", &bn_act); }

TORCH_LIBRARY_IMPL(superconv_bn, CPU, m) {
  m.impl("forward", &bn_forward);
  m.impl("backward", &bn_backward);
  m.impl("bn_act", &bn_act_cpu);
}

TORCH_LIBRARY_IMPL(superconv_bn, CompositeExplicitAutograd, m) { m.impl("threads_used", &threads_used); }
