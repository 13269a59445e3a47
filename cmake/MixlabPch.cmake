# One precompiled LibTorch header that every C++ target reuses, for the sources that need it.
#
# LibTorch's headers cost a translation unit ~20 s to parse; the precompiled header cuts that
# for the files that include them. A file that never reaches LibTorch pays instead: loading the
# header made `runtime/semver.cpp` take 23 s of CPU against 6.5 s without it (GCC 12, -O3). So
# mixlab_use_pch() gives the header only to the sources whose project #includes reach
# torch/, ATen/ or c10/, found by a scan at configure time. A file that gains such an include
# compiles correctly either way; it gets the header back at the next configure.

add_library(mixlab_pch OBJECT ${CMAKE_SOURCE_DIR}/sdk/pch.cpp)
target_link_libraries(mixlab_pch PRIVATE mixlab::sdk)
target_precompile_headers(mixlab_pch PRIVATE <torch/torch.h> <ATen/DLConvertor.h> <nlohmann/json.hpp>)

# The folders project headers are included from, besides the including file's own.
set(MIXLAB_PCH_SCAN_DIRS ${CMAKE_SOURCE_DIR}/host ${CMAKE_SOURCE_DIR}/sdk/include ${CMAKE_SOURCE_DIR}/tests/unit
    ${CMAKE_SOURCE_DIR}/bench)

# Sets ${out} to TRUE when `file` or a project header it includes (transitively) includes
# LibTorch. Results are remembered per file for the whole configure.
function(mixlab_reaches_torch file out)
  string(MD5 key "${file}")
  get_property(known GLOBAL PROPERTY MIXLAB_TORCH_${key} SET)
  if(known)
    get_property(result GLOBAL PROPERTY MIXLAB_TORCH_${key})
    set(${out} ${result} PARENT_SCOPE)
    return()
  endif()
  set_property(GLOBAL PROPERTY MIXLAB_TORCH_${key} FALSE)  # an include cycle ends here
  set(result FALSE)
  file(STRINGS "${file}" includes REGEX "^[ \t]*#[ \t]*include[ \t]*[<\"]")
  get_filename_component(here "${file}" DIRECTORY)
  foreach(line IN LISTS includes)
    string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]*[<\"]([^>\"]+)[>\"].*" "\\1" name "${line}")
    if(name MATCHES "^(torch|ATen|c10)/")
      set(result TRUE)
      break()
    endif()
    foreach(dir IN ITEMS ${here} ${MIXLAB_PCH_SCAN_DIRS})
      if(EXISTS "${dir}/${name}" AND NOT IS_DIRECTORY "${dir}/${name}")
        mixlab_reaches_torch("${dir}/${name}" nested)
        if(nested)
          set(result TRUE)
        endif()
        break()
      endif()
    endforeach()
    if(result)
      break()
    endif()
  endforeach()
  set_property(GLOBAL PROPERTY MIXLAB_TORCH_${key} ${result})
  set(${out} ${result} PARENT_SCOPE)
endfunction()

function(mixlab_use_pch target)
  target_precompile_headers(${target} REUSE_FROM mixlab_pch)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "EXECUTABLE")
    # Executables would get -fPIE and so could not use the -fPIC header.
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE OFF)
    target_compile_options(${target} PRIVATE -fPIC)
  endif()
  get_target_property(sources ${target} SOURCES)
  get_target_property(source_dir ${target} SOURCE_DIR)
  foreach(source IN LISTS sources)
    if(NOT source MATCHES "\\.(cpp|cc|cxx)$")
      continue()
    endif()
    get_filename_component(path "${source}" ABSOLUTE BASE_DIR "${source_dir}")
    mixlab_reaches_torch("${path}" uses_torch)
    if(NOT uses_torch)
      set_source_files_properties("${path}" TARGET_DIRECTORY ${target} PROPERTIES SKIP_PRECOMPILE_HEADERS ON)
    endif()
  endforeach()
endfunction()
