# install.cmake — libraddino.so, `cmake --install`, pkg-config, man pages, shell completion and
# the Debian package (cpack -G DEB). Included at the end of CMakeLists.txt, after the targets.
#
# One shared library, libraddino.so.0, holds the public API of common/, encoder/, hub/, store/, index/,
# collection/, probe/, ingest/, analysis/ (and lib/: build information, the flat entry points of the Python binding). It is
# made from the objects of the static libraries the tests link (compiled once, position
# independent, -fvisibility=hidden; the public headers mark their declarations visible), and a
# version script exports raddino_* only: FAISS (linked statically from Debian's libfaiss.a) and
# our internal helpers stay inside. The raddino program links the shared library and finds it
# through RPATH $ORIGIN/../lib, so an installed tree can be moved.
include(GNUInstallDirs)

set(RADDINO_LIB_PARTS raddino_status raddino_encoder raddino_hub raddino_store raddino_index raddino_collection
  raddino_probe raddino_ingest raddino_analysis)
set_target_properties(${RADDINO_LIB_PARTS} PROPERTIES POSITION_INDEPENDENT_CODE ON
  C_VISIBILITY_PRESET hidden CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
get_target_property(_faiss_c_type raddino_faiss_c TYPE)
if(_faiss_c_type STREQUAL "STATIC_LIBRARY")
  set_target_properties(raddino_faiss_c PROPERTIES POSITION_INDEPENDENT_CODE ON
    CXX_VISIBILITY_PRESET hidden VISIBILITY_INLINES_HIDDEN ON)
endif()

# The commit, written at every build (only rewritten when it changed).
set(RADDINO_GENERATED ${CMAKE_CURRENT_BINARY_DIR}/generated)
add_custom_target(raddino_git_commit
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR}
          -DOUT=${RADDINO_GENERATED}/raddino_git.h -P ${CMAKE_CURRENT_SOURCE_DIR}/cmake/git.cmake
  BYPRODUCTS ${RADDINO_GENERATED}/raddino_git.h
  COMMENT "raddino: git commit" VERBATIM)

# FAISS's version from its headers (libfaiss.a has no version call in its C API).
set(RADDINO_FAISS_VERSION "unknown")
find_file(RADDINO_FAISS_INDEX_H faiss/Index.h HINTS ${FAISS_C_API_INCLUDE_DIR})
if(RADDINO_FAISS_INDEX_H)
  file(STRINGS ${RADDINO_FAISS_INDEX_H} _fv REGEX "^#define FAISS_VERSION_(MAJOR|MINOR|PATCH) ")
  string(REGEX REPLACE ".*MAJOR ([0-9]+).*MINOR ([0-9]+).*PATCH ([0-9]+).*" "\\1.\\2.\\3"
         RADDINO_FAISS_VERSION "${_fv}")
endif()

add_library(raddino_shared SHARED lib/build_info.c lib/flat.c
  $<TARGET_OBJECTS:raddino_status> $<TARGET_OBJECTS:raddino_encoder>
  $<TARGET_OBJECTS:raddino_hub> $<TARGET_OBJECTS:raddino_store>
  $<TARGET_OBJECTS:raddino_index> $<TARGET_OBJECTS:raddino_collection>
  $<TARGET_OBJECTS:raddino_probe> $<TARGET_OBJECTS:raddino_ingest>
  $<TARGET_OBJECTS:raddino_analysis>)
add_dependencies(raddino_shared raddino_git_commit)
set_target_properties(raddino_shared PROPERTIES OUTPUT_NAME raddino
  VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
  C_VISIBILITY_PRESET hidden LINKER_LANGUAGE CXX
  LINK_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/lib/raddino.map)
target_include_directories(raddino_shared
  PUBLIC $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/lib>
         $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/common>
         $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/encoder>
         $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/hub>
         $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/store>
         $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/index>
         $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/collection>
         $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/probe>
         $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/ingest>
         $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/analysis>
  PRIVATE ${RADDINO_GENERATED} ${GDCM_INCLUDE_DIR})
target_compile_definitions(raddino_shared PRIVATE
  RADDINO_VERSION_STRING="${PROJECT_VERSION}" RADDINO_FAISS_VERSION="${RADDINO_FAISS_VERSION}")
target_link_libraries(raddino_shared PRIVATE raddino_faiss_c PkgConfig::OPENBLAS
  PkgConfig::CJSON PkgConfig::LIBJPEG PkgConfig::LIBPNG PkgConfig::LIBCURL PkgConfig::LIBCRYPTO
  PkgConfig::SQLITE3 Threads::Threads PkgConfig::OPENJP2 PkgConfig::CHARLS ${GDCM_MSFF_LIBRARY} ${GDCM_DSED_LIBRARY} ${GDCM_COMMON_LIBRARY}
  OpenMP::OpenMP_C m)
target_link_options(raddino_shared PRIVATE
  -Wl,--version-script=${CMAKE_CURRENT_SOURCE_DIR}/lib/raddino.map)
if(NOT RADDINO_SANITIZE)
  # Every symbol resolved at link time: a missing dependency fails here, not in a user's program
  # (the sanitizer runtimes are only resolved when the program loads, hence not with them).
  target_link_options(raddino_shared PRIVATE -Wl,--no-undefined)
endif()

# The public headers, also as build/include/raddino/ so the examples build here as they do
# against an installed tree: #include <raddino/raddino.h>, the headers and libraddino.so only.
set(RADDINO_PUBLIC_HEADERS lib/raddino.h common/raddino_status.h encoder/raddino_encoder.h
    hub/raddino_hub.h
    store/raddino_store.h index/raddino_index.h collection/raddino_collection.h probe/raddino_probe.h
    ingest/raddino_ingest.h analysis/raddino_analysis.h)
foreach(h ${RADDINO_PUBLIC_HEADERS})
  get_filename_component(_name ${h} NAME)
  configure_file(${h} ${CMAKE_CURRENT_BINARY_DIR}/include/raddino/${_name} COPYONLY)
endforeach()
add_executable(index_folder examples/index_folder.c)
target_include_directories(index_folder PRIVATE ${CMAKE_CURRENT_BINARY_DIR}/include)
target_link_libraries(index_folder PRIVATE $<TARGET_LINKER_FILE:raddino_shared>)
add_dependencies(index_folder raddino_shared)
set_target_properties(index_folder PROPERTIES BUILD_RPATH $<TARGET_FILE_DIR:raddino_shared>)

set_target_properties(raddino PROPERTIES INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}")
# The library loads the OpenMP OpenBLAS from its own folder, whichever libopenblas.so.0 the
# system's alternatives select (see RADDINO_OPENBLAS_DIR in CMakeLists.txt), installed too.
set_target_properties(raddino_shared PROPERTIES INSTALL_RPATH "${RADDINO_OPENBLAS_DIR}")

# ---- man pages and completion, from the built program's --help ----
set(RADDINO_DOCS ${CMAKE_CURRENT_BINARY_DIR}/docs)
add_custom_command(OUTPUT ${RADDINO_DOCS}/stamp
  COMMAND ${CMAKE_COMMAND} -E rm -rf ${RADDINO_DOCS}/man1 ${RADDINO_DOCS}/completion
  COMMAND ${CMAKE_COMMAND} -E env OMP_WAIT_POLICY=passive
          sh ${CMAKE_CURRENT_SOURCE_DIR}/cmake/gen_docs.sh $<TARGET_FILE:raddino> ${RADDINO_DOCS}
          ${PROJECT_VERSION}
  COMMAND ${CMAKE_COMMAND} -E touch ${RADDINO_DOCS}/stamp
  DEPENDS raddino ${CMAKE_CURRENT_SOURCE_DIR}/cmake/gen_docs.sh
  COMMENT "raddino: man pages and shell completion from --help" VERBATIM)
add_custom_target(raddino_docs ALL DEPENDS ${RADDINO_DOCS}/stamp)

# ---- pkg-config ----
# prefix is found from the .pc file's own place, so the file is right for whatever prefix
# `cmake --install --prefix` or a package chose.
file(RELATIVE_PATH RADDINO_PC_UP "/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/")
string(REGEX REPLACE "/$" "" RADDINO_PC_UP "${RADDINO_PC_UP}")
configure_file(${CMAKE_CURRENT_SOURCE_DIR}/lib/raddino.pc.in
               ${CMAKE_CURRENT_BINARY_DIR}/raddino.pc @ONLY)

# ---- install ----
install(TARGETS raddino RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS raddino_shared LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES ${RADDINO_PUBLIC_HEADERS} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/raddino)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/raddino.pc
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
install(DIRECTORY ${RADDINO_DOCS}/man1 DESTINATION ${CMAKE_INSTALL_MANDIR})
install(FILES ${RADDINO_DOCS}/completion/raddino
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/bash-completion/completions)
install(FILES ${RADDINO_DOCS}/completion/_raddino
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/zsh/vendor-completions)
install(FILES LICENSE THIRD_PARTY_NOTICES README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(FILES examples/nearest.c examples/index_folder.c examples/Makefile
        DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

# ---- Debian package: cpack -G DEB (in the build folder) ----
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME raddino)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "raddino developers")
set(CPACK_PACKAGE_CONTACT "raddino developers <raddino@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "RAD-DINO chest X-ray embeddings: embed, index, search, cluster (CLI and C library)")
set(CPACK_PACKAGE_DESCRIPTION
    "raddino turns chest X-rays (PNG, JPEG, DICOM) into RAD-DINO (DINOv2 ViT-B/14) embeddings \
on the CPU, keeps them in a SQLite collection with a FAISS index, and searches, clusters and \
deduplicates them. Includes libraddino.so with its headers and pkg-config file, man pages and \
shell completion. RAD-DINO's weights are not included (raddino model fetch).")
set(CPACK_RESOURCE_FILE_LICENSE ${CMAKE_CURRENT_SOURCE_DIR}/LICENSE)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION science)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)   # Depends from the ELF files (dpkg-shlibdeps, dpkg-dev)
# dpkg-shlibdeps names the virtual libopenblas0; the library's RUNPATH wants the OpenMP build.
set(CPACK_DEBIAN_PACKAGE_DEPENDS "libopenblas0-openmp")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${CMAKE_CURRENT_BINARY_DIR})
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON)
include(CPack)
