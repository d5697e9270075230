#!/bin/sh
# Builds raddino and runs every test suite (Check suites and the CLI script) through ctest.
# RADDINO_BUILD: build folder (default build); RADDINO_CMAKE_ARGS: extra cmake arguments.
set -eu
cd "$(dirname "$0")/.."
build=${RADDINO_BUILD:-build}
# shellcheck disable=SC2086
cmake -S . -B "$build" -DRADDINO_WERROR=ON ${RADDINO_CMAKE_ARGS:-}
cmake --build "$build" -j"$(nproc)"
ctest --test-dir "$build" --output-on-failure -j"$(nproc)"
