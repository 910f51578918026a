#!/bin/sh
# The slow lifecycle tests, on release builds (the CPU budget of the crash
# loop is meant for the optimised daemon): 20 kill -9 / restart rounds, a
# 100 MB line, and a 60 s crash loop of 20 programs. About 2 minutes plus
# the build. Extra arguments go to the test binary (e.g. a test name).
set -eu
cd "$(dirname "$0")/.."
exec cargo test --release -p integration --test lifecycle -- --ignored --test-threads=1 "$@"
