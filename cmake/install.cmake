# What `cmake --install` (and so cpack) puts where, under GNUInstallDirs:
#   bin/kosli-credd, bin/kosli-cred, bin/git-credential-kosli -> kosli-cred
#   libexec/kosli-cred/kosli-cred: kosli-cred's full command line (client/CMakeLists.txt)
#   lib/systemd/user/kosli-credd.{socket,service}          (systemd/CMakeLists.txt)
#   share/man/man1/kosli-credd.1, kosli-cred.1
#   share/bash-completion/completions/kosli-cred
# The static CI build (cmake/static_ci.cmake) installs the programs, the link,
# the man pages and share/doc/kosli-credential-helper/README.md (and LICENSE,
# when there is one); no user units or completion on a CI runner. Its tarball
# extracts into any prefix (tar --strip-components=1 -C /usr/local).

install(TARGETS kosli-credd kosli-cred RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS kosli-cred-cli RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/kosli-cred)

# git runs `git-credential-<helper>`: a relative link to kosli-cred, made here
# at configure time so installing never depends on what a build left behind.
set(kosli_link_dir ${CMAKE_BINARY_DIR}/install-links)
file(MAKE_DIRECTORY ${kosli_link_dir})
file(CREATE_LINK kosli-cred ${kosli_link_dir}/git-credential-kosli SYMBOLIC)
install(FILES ${kosli_link_dir}/git-credential-kosli DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES docs/man/kosli-credd.1 docs/man/kosli-cred.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
if(KOSLI_STATIC_CI)
  install(FILES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
  if(EXISTS ${PROJECT_SOURCE_DIR}/LICENSE)
    install(FILES LICENSE DESTINATION ${CMAKE_INSTALL_DOCDIR})
  endif()
  return()
endif()
install(FILES docs/completion/kosli-cred.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME kosli-cred)
