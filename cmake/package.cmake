# `cpack -G DEB` (or `cpack --config build/CPackConfig.cmake`): a .deb of what
# cmake/install.cmake installs, under /usr. dpkg-shlibdeps works out the shared
# libraries' packages (libsecret-1-0, libglib2.0-0, libssl3, …).

set(KOSLI_PACKAGE_MAINTAINER "kosli-credential-helper maintainers <maintainers@kosli-credential-helper.invalid>"
    CACHE STRING "The .deb's Maintainer field")

set(CPACK_PACKAGE_NAME kosli-credential-helper)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_STRIP_FILES ON)

# The static CI build (cmake/static_ci.cmake): a tarball instead, for any
# x86-64 Linux runner, with one top directory of the tarball's own name:
#   kosli-credential-helper-<version>-linux-x86_64-static/{bin,libexec,share/man,share/doc}
if(KOSLI_STATIC_CI)
  set(CPACK_GENERATOR TGZ)
  set(CPACK_PACKAGE_FILE_NAME "${CPACK_PACKAGE_NAME}-${PROJECT_VERSION}-linux-${CMAKE_SYSTEM_PROCESSOR}-static")
  include(CPack)
  return()
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_CONTACT "${KOSLI_PACKAGE_MAINTAINER}")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Kosli API keys in the OS keyring, bearer tokens over a private socket")
set(CPACK_PACKAGE_DESCRIPTION
    "kosli-credd keeps Kosli API keys in the Secret Service (or only in locked memory, for CI)
and hands them out as bearer tokens over a private Unix socket; kosli-cred is the client
for people, scripts, git and CI jobs. Includes systemd user units for socket activation.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# The Secret Service most desktops run; without one the daemon keeps keys in memory.
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS gnome-keyring)
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "systemd, bash-completion")

include(CPack)
