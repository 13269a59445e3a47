// The Gloo process group for CPU training, in a file of its own: c10d's ProcessGroupGloo.hpp
// needs Gloo's headers, which the wheel does not ship (Debian's libgloo-dev gives their
// declarations), and our allocation must match the wheel's object size, known per LibTorch
// version (host/CMakeLists.txt defines MIXLAB_WITH_GLOO and MIXLAB_GLOO_OBJECT_SIZE when both
// are there; docs/dependencies.md). scripts/check_gloo_symbols.sh checks this file's object
// uses nothing of Gloo but names.
#include <torch/csrc/distributed/c10d/Backend.hpp>
#include <torch/csrc/distributed/c10d/Store.hpp>
#include <torch/version.h>

#ifdef MIXLAB_WITH_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace mixlab {

#ifdef MIXLAB_WITH_GLOO
// Allocated here, constructed by libtorch: must match the wheel's object size, read from the
// allocation in libtorch_python's ProcessGroupGloo factory (docs/dependencies.md).
static_assert(sizeof(c10d::ProcessGroupGloo) == MIXLAB_GLOO_OBJECT_SIZE,
              "c10d::ProcessGroupGloo's size differs from the torch wheel's: see docs/dependencies.md (Gloo)");
#endif

std::string gloo_group_missing() {
#ifdef MIXLAB_WITH_GLOO
  return "";
#else
  return "training.dist_backend = \"gloo\": this host was built without Gloo's process group (no Gloo headers, "
         "or a LibTorch " TORCH_VERSION " whose ProcessGroupGloo size is not known; docs/dependencies.md); "
         "use one process, or \"nccl\" on CUDA";
#endif
}

c10::intrusive_ptr<c10d::Backend> make_gloo_group(const c10::intrusive_ptr<c10d::Store>& store, int rank, int size,
                                                  std::chrono::milliseconds timeout) {
#ifdef MIXLAB_WITH_GLOO
  auto options = c10d::ProcessGroupGloo::Options::create_default(timeout);
  if (const char* ifname = std::getenv("GLOO_SOCKET_IFNAME"))
    options->devices = {c10d::ProcessGroupGloo::createDeviceForInterface(ifname)};
  return c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, size, options);
#else
  (void)store, (void)rank, (void)size, (void)timeout;
  throw std::runtime_error(gloo_group_missing());
#endif
}

}  // namespace mixlab
