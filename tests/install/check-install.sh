#!/usr/bin/env bash
# Installs the build into a temporary prefix and builds a broker against it through
# pkg-config, linked both ways (shared and static), then runs each.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -1)
export PKG_CONFIG_PATH=$libdir
test -f "$tmp/prefix/include/osb/osb.h"
ls "$(dirname "$libdir")"/libosb.so* "$(dirname "$libdir")"/libosb.a >/dev/null
cc -std=c17 -Wall -Werror "$src/minimal_broker.c" $(pkg-config --cflags --libs libosb) -o "$tmp/shared"
# libosb itself static, the system libraries it needs shared (their own static archives, such as
# libcurl's dependencies, are not what a broker wants to carry).
cc -std=c17 -Wall -Werror "$src/minimal_broker.c" -o "$tmp/static" \
   $(pkg-config --cflags libosb) "$(dirname "$libdir")/libosb.a" \
   $(pkg-config --libs jansson libmicrohttpd libcurl libcrypto libsodium sqlite3 libpq libpcre2-8) -lpthread -lm
catalog="$src/../../examples/starter-broker/catalog.json"
out=$(LD_LIBRARY_PATH="$(dirname "$libdir")" "$tmp/shared" "$catalog" "$tmp/d1")
echo "shared: $out"
[[ $out == port\ *", 1 services" ]]
out=$("$tmp/static" "$catalog" "$tmp/d2")
echo "static: $out"
[[ $out == port\ *", 1 services" ]]
if ldd "$tmp/static" | grep -q libosb; then
    echo "static build still links libosb.so" >&2
    exit 1
fi
echo "install: ok"
