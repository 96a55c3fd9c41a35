# What `cmake --install` (and so cpack) puts where, under GNUInstallDirs:
#   bin/kosli-credd, bin/kosli-cred, bin/git-credential-kosli -> kosli-cred
#   libexec/kosli-cred/kosli-cred: kosli-cred's full command line (client/CMakeLists.txt)
#   lib/systemd/user/kosli-credd.{socket,service}          (systemd/CMakeLists.txt)
#   share/man/man1/kosli-credd.1, kosli-cred.1
#   share/bash-completion/completions/kosli-cred

install(TARGETS kosli-credd kosli-cred RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS kosli-cred-cli RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/kosli-cred)

# git runs `git-credential-<helper>`: a relative link to kosli-cred, made here
# at configure time so installing never depends on what a build left behind.
set(kosli_link_dir ${CMAKE_BINARY_DIR}/install-links)
file(MAKE_DIRECTORY ${kosli_link_dir})
file(CREATE_LINK kosli-cred ${kosli_link_dir}/git-credential-kosli SYMBOLIC)
install(FILES ${kosli_link_dir}/git-credential-kosli DESTINATION ${CMAKE_INSTALL_BINDIR})

install(FILES docs/man/kosli-credd.1 docs/man/kosli-cred.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
install(FILES docs/completion/kosli-cred.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions
        RENAME kosli-cred)
