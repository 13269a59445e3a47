# Finds LibTorch from the PyPI `torch` wheel of the python3 on PATH and
# defines mixlab_torch (an INTERFACE target) that links it with run paths to the
# wheel's CUDA libraries, so one binary runs on CPU-only and GPU machines.
if(TARGET mixlab_torch)
  return()
endif()

find_package(Python3 REQUIRED COMPONENTS Interpreter)
execute_process(
  COMMAND ${Python3_EXECUTABLE} -c "import torch, torch.utils, os; print(torch.utils.cmake_prefix_path); print(os.path.dirname(os.path.dirname(torch.__file__)))"
  OUTPUT_VARIABLE _mixlab_torch_out OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _mixlab_torch_rc)
if(NOT _mixlab_torch_rc EQUAL 0)
  message(FATAL_ERROR "mixlab: python3 cannot import torch; run `make deps` (pip install torch==${MIXLAB_TORCH_VERSION})")
endif()
string(REPLACE "\n" ";" _mixlab_torch_out "${_mixlab_torch_out}")
list(GET _mixlab_torch_out 0 _mixlab_torch_prefix)
list(GET _mixlab_torch_out 1 _mixlab_site_packages)
list(APPEND CMAKE_PREFIX_PATH "${_mixlab_torch_prefix}")

# The wheel's Caffe2 CMake probes the local GPU unless an arch list is given;
# there is no GPU on the build machines, so name the common data-centre ones.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
endif()
find_package(Torch REQUIRED)

add_library(mixlab_torch INTERFACE)
target_link_libraries(mixlab_torch INTERFACE ${TORCH_LIBRARIES})
target_include_directories(mixlab_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
# libtorch_cuda needs the CUDA runtime libraries that pip placed under nvidia/*/lib;
# the Python package preloads them, a C++ program finds them through its run path.
file(GLOB _mixlab_nvidia_dirs LIST_DIRECTORIES true "${_mixlab_site_packages}/nvidia/*/lib")
set(_mixlab_torch_lib "${_mixlab_site_packages}/torch/lib")
foreach(_dir ${_mixlab_torch_lib} ${_mixlab_nvidia_dirs})
  target_link_options(mixlab_torch INTERFACE "LINKER:-rpath-link,${_dir}" "LINKER:-rpath,${_dir}")
endforeach()
