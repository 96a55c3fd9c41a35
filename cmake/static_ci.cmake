# -DKOSLI_STATIC_CI=ON: a kosli-credd and kosli-cred that run on any x86-64
# Linux runner, whatever its distribution ships: no shared library at all, no
# program interpreter. The memory backend only (KOSLI_WITH_SECRET_SERVICE is
# off: no libsecret, no GLib). `cpack --config <build>/CPackConfig.cmake` makes
# kosli-credential-helper-<version>-linux-<arch>-static.tar.gz (cmake/package.cmake).
#
# What links statically, and how:
#   glibc, libstdc++   libc.a and libstdc++.a (build-essential). glibc's static
#                      name lookup has /etc/hosts and DNS built in; kosli-credd
#                      pins it to those two (daemon/ops/name_lookup.cpp), so it
#                      never dlopens an NSS module of the runner's glibc.
#   OpenSSL            libssl.a and libcrypto.a (libssl-dev); OPENSSL_USE_STATIC_LIBS
#                      is set before find_package(OpenSSL) in CMakeLists.txt.
#   spdlog, fmt        Debian ships both as shared libraries only: their
#                      header-only forms (SPDLOG_HEADER_ONLY follows from the
#                      absence of SPDLOG_COMPILED_LIB; FMT_HEADER_ONLY).
# kosli-credd is a static PIE, so a long-running process holding keys keeps a
# randomised layout; the client is static and not PIE, as in every build
# (client/CMakeLists.txt says why).

if(KOSLI_SANITIZE OR KOSLI_BUILD_FUZZERS OR KOSLI_BUILD_BENCHMARKS)
  message(FATAL_ERROR "KOSLI_STATIC_CI builds only the two programs and their checks: configure it in a "
                      "build directory of its own, without KOSLI_SANITIZE, KOSLI_BUILD_FUZZERS or "
                      "KOSLI_BUILD_BENCHMARKS")
endif()

set(CMAKE_POSITION_INDEPENDENT_CODE ON)

get_target_property(kosli_spdlog_includes spdlog::spdlog_header_only INTERFACE_INCLUDE_DIRECTORIES)
add_library(kosli_spdlog_header_only INTERFACE)
target_include_directories(kosli_spdlog_header_only INTERFACE ${kosli_spdlog_includes})
target_compile_definitions(kosli_spdlog_header_only INTERFACE SPDLOG_FMT_EXTERNAL FMT_HEADER_ONLY=1)
target_link_libraries(kosli_spdlog_header_only INTERFACE Threads::Threads)
set(KOSLI_SPDLOG kosli_spdlog_header_only)
