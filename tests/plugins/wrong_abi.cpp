// Broken on purpose: built for a future ABI major (2.0); the host must refuse it
// by name with both versions. Written against the C header alone.
#include <mixlab/plugin.h>

extern "C" MIXLAB_EXPORT const mixlab_library* mixlab_plugin_entry(uint32_t, uint32_t, const mixlab_host_api*) {
  static const mixlab_library lib{sizeof(mixlab_library), MIXLAB_ABI_MAJOR + 1, 0, "", 0, nullptr, 0, nullptr, nullptr};
  return &lib;
}
