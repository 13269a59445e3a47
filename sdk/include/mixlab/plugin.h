/*
 * mixlab/plugin.h -- the mixlab plugin ABI (C11, no C++ types).
 *
 * A plugin is a shared library that exports exactly one symbol,
 * `mixlab_plugin_entry`. The host calls it once with the ABI version it
 * speaks and its service table; the plugin answers with a library
 * descriptor listing one or more implementations (a sequence mixer such as
 * `retnet/chunkwise`, or an FFN such as `mlp/default`).
 *
 * Ownership rules, in one place:
 *   - The HOST owns parameters, inputs, outputs and gradients. It allocates
 *     them from the plugin's declarations and passes them as borrowed
 *     DLTensors that are valid for the duration of one call (inputs and
 *     parameters of a forward stay valid and unmodified until the matching
 *     backward or saved_release).
 *   - The PLUGIN owns instances, saved-for-backward handles and decode
 *     states; the host releases each through the matching destroy/release.
 *   - Errors are values: every fallible entry point returns a
 *     `mixlab_status*` made with `host->status_new` (NULL means success);
 *     ownership passes to the host. Nothing ever throws, aborts or exits
 *     across this boundary.
 *   - Strings in descriptors and specs are owned by the plugin and live as
 *     long as the library (descriptor) or the instance (specs).
 *
 * Versioning: MIXLAB_ABI_MAJOR must match exactly; MINOR grows only by
 * appending fields to the end of a struct. Every struct starts with
 * `struct_size`; a reader never touches a field that lies beyond the size
 * the writer reported (use MIXLAB_HAS_FIELD). The first three fields of
 * mixlab_library (struct_size, abi_major, abi_minor) are frozen forever, so
 * a host can always name both versions when it refuses a library.
 *
 * Minimal use from C (host side, error handling elided):
 *
 *   const mixlab_library* lib = entry(MIXLAB_ABI_MAJOR, MIXLAB_ABI_MINOR, &host);
 *   const mixlab_impl* impl = lib->impls[0];
 *   mixlab_create_args args = { sizeof args, 256, 1024, "{\"n_heads\":4}" };
 *   mixlab_instance* inst;  impl->create(&args, &inst);
 *   const mixlab_param_spec* specs; int32_t n;  impl->param_specs(inst, &specs, &n);
 *   ... allocate and initialise n parameters, then impl->forward(...) ...
 *   impl->destroy(inst);
 */
#ifndef MIXLAB_PLUGIN_H_
#define MIXLAB_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

/* DLTensor, DLDevice, DLDataType. ATen's <ATen/dlpack.h> uses the same include
 * guard and the same layout for these three types (DLPack 0.6 .. 1.x), so a
 * LibTorch translation unit includes it first and this include is skipped. */
#include <dlpack/dlpack.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ version */

#define MIXLAB_ABI_MAJOR 1
#define MIXLAB_ABI_MINOR 2
#define MIXLAB_ENTRY_SYMBOL "mixlab_plugin_entry"
#define MIXLAB_MAX_DIMS 8
#define MIXLAB_MESSAGE_SIZE 1024

/* Size of a struct up to and including `field`: what a writer that knows
 * `field` reports at least, and what a reader checks before reading it. */
#define MIXLAB_STRUCT_SIZE(type, field) \
  (offsetof(type, field) + sizeof(((type*)0)->field))
#define MIXLAB_HAS_FIELD(ptr, type, field) \
  ((ptr)->struct_size >= MIXLAB_STRUCT_SIZE(type, field))

#if defined(_WIN32)
#define MIXLAB_EXPORT __declspec(dllexport)
#else
#define MIXLAB_EXPORT __attribute__((visibility("default")))
#endif

/* ------------------------------------------------------------------ status */

typedef enum mixlab_code {
  MIXLAB_OK = 0,
  MIXLAB_INVALID_ARGUMENT = 1, /* bad config or bad call; config messages start with "<key>: " */
  MIXLAB_UNIMPLEMENTED = 2,    /* unsupported dtype, device or feature */
  MIXLAB_INTERNAL = 3,         /* a bug or an exception inside the plugin */
  MIXLAB_OUT_OF_MEMORY = 4
} mixlab_code;

typedef struct mixlab_status mixlab_status; /* opaque, created and owned by the host */

/* ------------------------------------------------------------ host services */

typedef enum mixlab_log_level {
  MIXLAB_LOG_DEBUG = 0,
  MIXLAB_LOG_INFO = 1,
  MIXLAB_LOG_WARN = 2,
  MIXLAB_LOG_ERROR = 3
} mixlab_log_level;

typedef struct mixlab_host_api {
  size_t   struct_size;
  uint32_t abi_major;
  uint32_t abi_minor;
  /* A new status; the host copies `message`. Never returns NULL for code != OK. */
  mixlab_status* (*status_new)(int32_t code, const char* message);
  /* Log through the host's logger (thread-safe). */
  void           (*log)(int32_t level, const char* message);
} mixlab_host_api;

/* ------------------------------------------------------------- descriptors */

typedef enum mixlab_family {
  MIXLAB_FAMILY_MIXER = 1, /* causal sequence mixer: (B, T, d_model) -> (B, T, d_model) */
  MIXLAB_FAMILY_FFN = 2    /* position-wise feed-forward: (B, T, d_model) -> (B, T, d_model) */
} mixlab_family;

/* Capability bits of an implementation. */
#define MIXLAB_CAP_CPU             (1ull << 0)
#define MIXLAB_CAP_CUDA            (1ull << 1)
#define MIXLAB_CAP_FLOAT32         (1ull << 2)
#define MIXLAB_CAP_FLOAT64         (1ull << 3)
#define MIXLAB_CAP_BFLOAT16        (1ull << 4)
#define MIXLAB_CAP_FLOAT16         (1ull << 5)
#define MIXLAB_CAP_DECODE          (1ull << 6)  /* state_create / step / state_destroy are set */
#define MIXLAB_CAP_CUSTOM_BACKWARD (1ull << 7)  /* backward is hand-written, not derived by autograd */
#define MIXLAB_CAP_DETERMINISTIC   (1ull << 8)  /* same inputs and seed -> bitwise-identical outputs */
#define MIXLAB_CAP_REENTRANT       (1ull << 9)  /* one instance may run on several threads at once */
#define MIXLAB_CAP_PREFERRED       (1ull << 10) /* ABI 1.1: the implementation an experiment gets when it
                                                   names the plugin but no impl (one per plugin) */

typedef struct mixlab_instance mixlab_instance; /* a configured implementation (plugin-owned) */
typedef struct mixlab_saved mixlab_saved;       /* what a forward keeps for its backward */
typedef struct mixlab_state mixlab_state;       /* a decode state (KV cache, SSM state, ...) */

/* What the host tells every instance about the model it sits in. */
typedef struct mixlab_create_args {
  size_t      struct_size;
  int64_t     d_model;     /* width of the residual stream */
  int64_t     max_seq_len; /* longest sequence the model will see */
  const char* config_json; /* the layer's plugin table as a JSON object (may be "{}") */
} mixlab_create_args;

/* How the host initialises a parameter it allocates. */
typedef enum mixlab_init {
  MIXLAB_INIT_ZEROS = 0,
  MIXLAB_INIT_ONES = 1,
  MIXLAB_INIT_CONSTANT = 2, /* all elements = a */
  MIXLAB_INIT_NORMAL = 3,   /* N(mean = a, std = b); b <= 0 means the model's init std */
  MIXLAB_INIT_UNIFORM = 4,  /* U(a, b) */
  MIXLAB_INIT_PLUGIN = 5    /* the host calls impl->init_param */
} mixlab_init;

#define MIXLAB_PARAM_NO_WEIGHT_DECAY (1u << 0)

typedef struct mixlab_param_spec {
  size_t      struct_size;
  const char* name;        /* unique in the instance, stable across implementations */
  const char* description; /* one line: what it is, for docs and `host plugins info` */
  int32_t     ndim;
  int64_t     shape[MIXLAB_MAX_DIMS];
  DLDataType  dtype;       /* {0,0,0}: the model's parameter dtype */
  int32_t     init;        /* mixlab_init */
  double      init_a;
  double      init_b;
  uint32_t    flags;       /* MIXLAB_PARAM_* */
} mixlab_param_spec;

typedef enum mixlab_side_kind {
  MIXLAB_SIDE_AUX_LOSS = 1,       /* differentiable scalar; the host adds coefficient * value to the loss */
  MIXLAB_SIDE_STATISTIC = 2,      /* float32 tensor of `shape`, logged by the host, never differentiated */
  MIXLAB_SIDE_TOKEN_STATISTIC = 3 /* ABI 1.1: float32 tensor (B, T, shape...), one value set per token
                                     (e.g. MoE routing weights), read by analyses, never differentiated.
                                     Declare it only to a host of minor >= 1: an older host would
                                     allocate `shape` alone. */
} mixlab_side_kind;

typedef struct mixlab_side_spec {
  size_t      struct_size;
  const char* name;        /* e.g. "balance_loss", "expert_share" */
  const char* description;
  int32_t     kind;        /* mixlab_side_kind */
  int32_t     ndim;        /* 0 for aux losses; token statistics: the dims after (B, T) */
  int64_t     shape[MIXLAB_MAX_DIMS];
  double      coefficient; /* aux losses: weight in the objective */
} mixlab_side_spec;

/* Per-call context. */
#define MIXLAB_CALL_TRAINING   (1u << 0) /* dropout / noise on */
#define MIXLAB_CALL_NEEDS_GRAD (1u << 1) /* a backward will follow: fill *saved */

typedef struct mixlab_call {
  size_t   struct_size;
  uint32_t flags;  /* MIXLAB_CALL_* */
  uint64_t seed;   /* for any randomness inside the call */
  void*    stream; /* cudaStream_t for CUDA tensors; NULL: the framework's current stream */
} mixlab_call;

/* Cost model, for `host explain` (per sequence position, batch 1). */
typedef struct mixlab_cost {
  size_t   struct_size;
  double   active_params;       /* parameters touched per token (MoE: router + top-k experts) */
  double   forward_flops;       /* forward FLOPs per token at seq_len, multiply-add = 2 */
  double   state_bytes;         /* decode state bytes for one sequence of seq_len tokens */
  int32_t  state_grows;         /* 1 if the decode state grows with the context */
  /* ABI 1.2, optional (0: not reported): an attention-like mixer names the standard
   * attention of the same head shape, so `host explain` can compare its cache: the
   * bytes one key/value head of it keeps per token (K and V together), and its number
   * of query heads (multi-head attention keeps that many kv heads). A plugin writes
   * these only when MIXLAB_HAS_FIELD(out, mixlab_cost, attention_heads): an older host
   * passes a smaller struct. */
  double   kv_head_bytes_per_token;
  int32_t  attention_heads;
} mixlab_cost;

/* Result of one of a library's own checks. */
typedef struct mixlab_check_result {
  size_t  struct_size;
  int32_t passed;
  double  error;     /* the measured error (metric named in message) */
  double  tolerance; /* the bound it was held to */
  char    message[MIXLAB_MESSAGE_SIZE];
} mixlab_check_result;

/* One implementation. Functions marked optional may be NULL. */
typedef struct mixlab_impl {
  size_t      struct_size;
  int32_t     family;      /* mixlab_family */
  const char* name;        /* plugin name, e.g. "retnet" */
  const char* impl;        /* implementation name, e.g. "chunkwise" */
  const char* version;     /* semantic version "MAJOR.MINOR.PATCH" */
  const char* description;
  uint64_t    caps;        /* MIXLAB_CAP_* */
  /* Mixers: largest |change| allowed in outputs before a perturbed position,
   * relative to max|y| (0: causality is exact, e.g. a scan; FFT convolutions
   * leak rounding error). */
  double      causality_bound;

  mixlab_status* (*create)(const mixlab_create_args* args, mixlab_instance** out);
  void           (*destroy)(mixlab_instance* instance);

  /* Parameters the host must allocate, in a fixed order; valid for the instance's life. */
  mixlab_status* (*param_specs)(const mixlab_instance* instance,
                                const mixlab_param_spec** specs, int32_t* count);
  /* Side outputs of forward (aux losses first, then statistics, in this order). */
  mixlab_status* (*side_specs)(const mixlab_instance* instance,
                               const mixlab_side_spec** specs, int32_t* count);
  /* Fill parameter `index` (declared MIXLAB_INIT_PLUGIN) deterministically from `seed`. */
  mixlab_status* (*init_param)(const mixlab_instance* instance, int32_t index,
                               uint64_t seed, DLTensor* param);

  /* y = f(x; params), x and y (B, T, d_model). `side` has one host-allocated tensor per
   * side spec. With MIXLAB_CALL_NEEDS_GRAD the plugin sets *saved (else leaves NULL). */
  mixlab_status* (*forward)(const mixlab_instance* instance, const mixlab_call* call,
                            const DLTensor* x, const DLTensor* const* params, int32_t n_params,
                            DLTensor* y, DLTensor* const* side, int32_t n_side,
                            mixlab_saved** saved);
  /* Gradients for the forward that produced `saved` (which backward consumes and frees).
   * grad_aux has one scalar per aux loss. Writes (overwrites) grad_x unless it is NULL and
   * every grad_params[i] that is not NULL; a parameter that does not affect y gets zeros. */
  mixlab_status* (*backward)(const mixlab_instance* instance, const mixlab_call* call,
                             mixlab_saved* saved, const DLTensor* grad_y,
                             const DLTensor* const* grad_aux, int32_t n_aux,
                             DLTensor* grad_x, DLTensor* const* grad_params, int32_t n_params);
  /* Free a saved handle whose backward never ran. */
  void           (*saved_release)(mixlab_saved* saved);

  /* Decode (MIXLAB_CAP_DECODE). step consumes x (B, T, d_model), T >= 1, continuing the
   * sequence held in the state, and writes y (B, T, d_model): T = 1 decodes, T > 1 prefills. */
  mixlab_status* (*state_create)(const mixlab_instance* instance, int64_t batch,
                                 DLDataType dtype, DLDevice device, mixlab_state** out);
  void           (*state_destroy)(mixlab_state* state);
  mixlab_status* (*step)(const mixlab_instance* instance, const mixlab_call* call,
                         mixlab_state* state, const DLTensor* x,
                         const DLTensor* const* params, int32_t n_params, DLTensor* y);

  /* Cost model (optional): see mixlab_cost. dtype_bytes sizes the decode state. */
  mixlab_status* (*cost)(const mixlab_instance* instance, int64_t seq_len,
                         int32_t dtype_bytes, mixlab_cost* out);
} mixlab_impl;

/* What mixlab_plugin_entry returns. */
typedef struct mixlab_library {
  size_t      struct_size;  /* frozen */
  uint32_t    abi_major;    /* frozen: the ABI the plugin was built against */
  uint32_t    abi_minor;    /* frozen */
  const char* build_tag;    /* "torch=2.15.0 cxx11abi=1 cuda=13.2", "" if no LibTorch */
  int32_t     n_impls;
  const mixlab_impl* const* impls;
  /* The library's own checks (family invariants), run by `host conformance`. */
  int32_t     n_checks;
  const char* const* check_names;
  mixlab_status* (*run_check)(int32_t index, uint64_t seed, mixlab_check_result* out);
} mixlab_library;

/* The one exported symbol. Always returns the library descriptor (whose first three
 * fields the host reads to refuse a major mismatch by name); NULL only if the plugin
 * cannot describe itself at all. Pure: callable from any thread, any number of times;
 * a descriptor it returned is immutable and stays valid while the library is loaded
 * (a later call, e.g. from a host of another major, never changes an earlier answer). */
typedef const mixlab_library* (*mixlab_plugin_entry_fn)(uint32_t host_abi_major,
                                                        uint32_t host_abi_minor,
                                                        const mixlab_host_api* host);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* MIXLAB_PLUGIN_H_ */
