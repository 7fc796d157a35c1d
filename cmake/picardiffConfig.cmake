# find_package(picardiff) support for the picardiff C ABI (include/picardiff.h).
#
# Defines the imported target picardiff::picardiff: the shared library (libpicardiff.so) with
# picardiff.h on its include path; with PICARDIFF_STATIC set ON before find_package, the static
# library (libpicardiff.a) and the system libraries Rust's standard library needs.
#
#   find_package(picardiff REQUIRED)          # with picardiff_DIR or CMAKE_PREFIX_PATH set, below
#   target_link_libraries(app PRIVATE picardiff::picardiff)
#
# Where it looks (first match wins):
#   1. PICARDIFF_LIBRARY_DIR / PICARDIFF_INCLUDE_DIR (CMake or environment variables);
#   2. an install prefix, with this file at <prefix>/lib/cmake/picardiff/picardiffConfig.cmake,
#      the library in <prefix>/lib and the header in <prefix>/include;
#   3. the picardiff source tree, with this file at <repo>/cmake/picardiffConfig.cmake: the header in
#      <repo>/include, the library in <target>/release then <target>/debug, where <target> is
#      $CARGO_TARGET_DIR or <repo>/target (build it first: cargo build --release).
# Note: Rust cdylibs carry no SONAME; the target links with -lpicardiff and CMake's build RPATH
# finds it. Installed applications need the library on their RPATH or the loader's path.


get_filename_component(_picardiff_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
get_filename_component(_picardiff_repo "${CMAKE_CURRENT_LIST_DIR}/.." ABSOLUTE)
if(DEFINED ENV{CARGO_TARGET_DIR})
  set(_picardiff_target "$ENV{CARGO_TARGET_DIR}")
else()
  set(_picardiff_target "${_picardiff_repo}/target")
endif()

if(PICARDIFF_STATIC)
  set(_picardiff_names "${CMAKE_STATIC_LIBRARY_PREFIX}picardiff${CMAKE_STATIC_LIBRARY_SUFFIX}")
else()
  set(_picardiff_names "${CMAKE_SHARED_LIBRARY_PREFIX}picardiff${CMAKE_SHARED_LIBRARY_SUFFIX}")
endif()

find_path(PICARDIFF_INCLUDE_DIR picardiff.h
  HINTS "$ENV{PICARDIFF_INCLUDE_DIR}" "${_picardiff_prefix}/include" "${_picardiff_repo}/include"
  NO_DEFAULT_PATH)
find_library(PICARDIFF_LIBRARY NAMES ${_picardiff_names}
  HINTS "$ENV{PICARDIFF_LIBRARY_DIR}" "${PICARDIFF_LIBRARY_DIR}" "${_picardiff_prefix}/lib"
        "${_picardiff_target}/release" "${_picardiff_target}/debug"
  NO_DEFAULT_PATH)

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(picardiff
  REQUIRED_VARS PICARDIFF_LIBRARY PICARDIFF_INCLUDE_DIR
  REASON_FAILURE_MESSAGE "build the library (cargo build --release) or set PICARDIFF_LIBRARY_DIR")

if(picardiff_FOUND AND NOT TARGET picardiff::picardiff)
  if(PICARDIFF_STATIC)
    find_package(Threads REQUIRED)
    add_library(picardiff::picardiff STATIC IMPORTED)
    set_target_properties(picardiff::picardiff PROPERTIES
      INTERFACE_LINK_LIBRARIES "Threads::Threads;${CMAKE_DL_LIBS};m")
  else()
    add_library(picardiff::picardiff SHARED IMPORTED)
    set_target_properties(picardiff::picardiff PROPERTIES IMPORTED_NO_SONAME TRUE)
  endif()
  set_target_properties(picardiff::picardiff PROPERTIES
    IMPORTED_LOCATION "${PICARDIFF_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${PICARDIFF_INCLUDE_DIR}")
endif()

unset(_picardiff_prefix)
unset(_picardiff_repo)
unset(_picardiff_target)
unset(_picardiff_names)
