// The NCCL process group for CUDA training, in a file of its own: it needs NCCL's and
// the CUDA runtime's headers, which the build finds in the wheel's nvidia packages
// (host/CMakeLists.txt defines MIXLAB_WITH_NCCL when they are there).
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>

#ifdef MIXLAB_WITH_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include <stdexcept>
#include <string>

namespace mixlab {

std::string nccl_group_missing() {
#ifdef MIXLAB_WITH_NCCL
  return "";
#else
  return "training.dist_backend = \"nccl\": this host was built without NCCL's headers (pip package nvidia-nccl) "
         "or the CUDA toolkit's; use \"gloo\"";
#endif
}

c10::intrusive_ptr<c10d::Backend> make_nccl_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout) {
#ifdef MIXLAB_WITH_NCCL
  auto options = c10d::ProcessGroupNCCL::Options::create();
  options->timeout = timeout;
  return c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, size, options);
#else
  (void)store, (void)rank, (void)size, (void)timeout;
  throw std::runtime_error(nccl_group_missing());
#endif
}

}  // namespace mixlab
