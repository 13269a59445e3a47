// Broken on purpose: a shared library without the mixlab entry symbol.
#include <mixlab/plugin.h>

extern "C" MIXLAB_EXPORT int mixlab_plugin_entry_misspelled() { return 0; }
