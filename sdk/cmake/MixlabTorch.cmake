# Finds LibTorch from the PyPI `torch` wheel of the python3 on PATH and
# defines mixlab_torch (an INTERFACE target) that links it with run paths to the
# wheel's CUDA libraries, so one binary runs on CPU-only and GPU machines.
if(TARGET mixlab_torch)
  return()
endif()

# MIXLAB_TORCH_DIR: the `torch` package folder of another installation (a wheel unpacked
# anywhere, or another Python's site-packages/torch) instead of python3's.
set(MIXLAB_TORCH_DIR "" CACHE PATH "folder of the torch package to build against (empty: python3's)")
if(MIXLAB_TORCH_DIR)
  if(NOT EXISTS "${MIXLAB_TORCH_DIR}/share/cmake/Torch/TorchConfig.cmake")
    message(FATAL_ERROR "mixlab: MIXLAB_TORCH_DIR=${MIXLAB_TORCH_DIR} has no share/cmake/Torch/TorchConfig.cmake; "
                        "give the folder of the torch package (…/site-packages/torch)")
  endif()
  get_filename_component(_mixlab_torch_dir "${MIXLAB_TORCH_DIR}" ABSOLUTE)
  set(_mixlab_torch_prefix "${_mixlab_torch_dir}/share/cmake")
  get_filename_component(_mixlab_site_packages "${_mixlab_torch_dir}" DIRECTORY)
else()
  find_package(Python3 REQUIRED COMPONENTS Interpreter)
  execute_process(
    COMMAND ${Python3_EXECUTABLE} -c "import torch, torch.utils, os; print(torch.utils.cmake_prefix_path); print(os.path.dirname(os.path.dirname(torch.__file__)))"
    OUTPUT_VARIABLE _mixlab_torch_out OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _mixlab_torch_rc)
  if(NOT _mixlab_torch_rc EQUAL 0)
    message(FATAL_ERROR "mixlab: python3 cannot import torch; run `make deps` (pip install torch==${MIXLAB_TORCH_VERSION}) "
                        "or set MIXLAB_TORCH_DIR")
  endif()
  string(REPLACE "\n" ";" _mixlab_torch_out "${_mixlab_torch_out}")
  list(GET _mixlab_torch_out 0 _mixlab_torch_prefix)
  list(GET _mixlab_torch_out 1 _mixlab_site_packages)
endif()
list(APPEND CMAKE_PREFIX_PATH "${_mixlab_torch_prefix}")

# The wheel's Caffe2 CMake probes the local GPU unless an arch list is given;
# there is no GPU on the build machines, so name the common data-centre ones.
if(NOT DEFINED TORCH_CUDA_ARCH_LIST)
  set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
endif()
find_package(Torch REQUIRED)
# Another minor than the pinned one builds (the GPU machine brings its own torch) but is untested.
if(DEFINED MIXLAB_TORCH_VERSION AND NOT Torch_VERSION VERSION_EQUAL MIXLAB_TORCH_VERSION)
  message(WARNING "mixlab: building against LibTorch ${Torch_VERSION} from ${_mixlab_site_packages}; "
                  "the tested one is ${MIXLAB_TORCH_VERSION} (docs/dependencies.md)")
endif()

# at::parallel_for is a header template that splits its loop over threads only where the code
# that includes it is compiled with OpenMP (_OPENMP; ATen/Parallel-inl.h): without -fopenmp every
# kernel of the host and the plugins ran on one thread. The wheel's LibTorch uses OpenMP and ships
# its own libgomp.so.1; linking the compiler's libgomp, of the same soname, loads that one copy.
find_package(OpenMP COMPONENTS CXX)
add_library(mixlab_torch INTERFACE)
target_link_libraries(mixlab_torch INTERFACE ${TORCH_LIBRARIES})
if(OpenMP_CXX_FOUND)
  # The flag, not OpenMP::OpenMP_CXX: that target links the compiler's libgomp by its full path
  # and puts its folder in the run path next to the wheel's.
  target_compile_options(mixlab_torch INTERFACE ${OpenMP_CXX_FLAGS})
  target_link_options(mixlab_torch INTERFACE ${OpenMP_CXX_FLAGS})
else()
  message(WARNING "mixlab: no OpenMP for ${CMAKE_CXX_COMPILER_ID}; mixlab's own kernels will run on one thread")
endif()
target_include_directories(mixlab_torch SYSTEM INTERFACE ${TORCH_INCLUDE_DIRS})
# libtorch_cuda needs the CUDA runtime libraries that pip placed under nvidia/*/lib;
# the Python package preloads them, a C++ program finds them through its run path.
file(GLOB _mixlab_nvidia_dirs LIST_DIRECTORIES true "${_mixlab_site_packages}/nvidia/*/lib")
set(_mixlab_torch_lib "${_mixlab_site_packages}/torch/lib")
foreach(_dir ${_mixlab_torch_lib} ${_mixlab_nvidia_dirs})
  target_link_options(mixlab_torch INTERFACE "LINKER:-rpath-link,${_dir}" "LINKER:-rpath,${_dir}")
endforeach()
