# mixlab_add_plugin(<target> SOURCES <files...> [OUTPUT_DIRECTORY <dir>])
#
# Builds a mixlab plugin: a MODULE library that links LibTorch and the SDK,
# hides every symbol but `mixlab_plugin_entry` (binary hygiene: the host's
# conformance check fails any other export), and is named lib<target>.so.
set(_MIXLAB_PLUGIN_MAP "${CMAKE_CURRENT_LIST_DIR}/mixlab_plugin.map")

function(mixlab_add_plugin target)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  add_library(${target} MODULE ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE mixlab::sdk)
  set_target_properties(${target} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON
    LINK_DEPENDS "${_MIXLAB_PLUGIN_MAP}")
  target_link_options(${target} PRIVATE "LINKER:--version-script=${_MIXLAB_PLUGIN_MAP}" "LINKER:--no-undefined")
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${target} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  endif()
endfunction()
