#!/bin/sh
# Proves, without a Docker engine, that the release binary runs on the Dockerfile's runtime image
# (gcr.io/distroless/cc-debian12): builds it the way the Dockerfile does, then checks with ldd that
# it links only libraries that image provides (glibc and libgcc_s; no OpenSSL, nothing else), and with
# readelf that it needs no glibc newer than Debian 12's 2.36.
#
# Meaningful on a Debian 12 (bookworm) host or builder, like the Dockerfile's build stage: a binary
# built against a newer glibc may need newer symbol versions, which is what the last check catches.
#
# Usage: scripts/check-static-deps.sh        (from anywhere; exits non-zero on the first problem)
set -eu

cd "$(dirname "$0")/.."
# glibc of gcr.io/distroless/cc-debian12 (Debian 12 "bookworm").
runtime_glibc=2.36

fail() {
    echo "check-static-deps: $*" >&2
    exit 1
}

echo "check-static-deps: cargo build --locked --release"
# Cargo says where the binary is (CARGO_TARGET_DIR or any other target directory setting).
binary=$(scripts/release-binary.sh)

# 1. Every library the loader would load must be in the runtime image. distroless/cc ships glibc
#    (libc, libm, libdl, libpthread, librt, libutil, libresolv, the loader) and libgcc_s.
libraries=$(ldd "$binary" | awk '{ print $1 }')
echo "check-static-deps: $binary needs:"
echo "$libraries" | sed 's/^/  /'
for library in $libraries; do
    case "$library" in
        linux-vdso.so.* | linux-gate.so.*) ;; # provided by the kernel
        /lib64/ld-linux-x86-64.so.2 | /lib/ld-linux-aarch64.so.1 | ld-linux*.so.*) ;;
        libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | libutil.so.1 | libresolv.so.2) ;;
        libgcc_s.so.1) ;;
        libssl.so.* | libcrypto.so.*)
            fail "$binary links $library: OpenSSL is not in the runtime image; kube must use rustls" ;;
        *)
            fail "$binary links $library, which gcr.io/distroless/cc-debian12 does not provide" ;;
    esac
done
if ldd "$binary" | grep -q 'not found'; then
    fail "a library is missing even here: $(ldd "$binary" | grep 'not found')"
fi

# 2. No symbol may need a glibc newer than the runtime's.
newest=$(readelf --version-info --wide "$binary" \
    | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -k3,3n | uniq | tail -n 1)
[ -n "$newest" ] || fail "readelf found no GLIBC symbol versions in $binary"
echo "check-static-deps: newest glibc symbol version needed: $newest (runtime has $runtime_glibc)"
highest=$(printf '%s\n%s\n' "$newest" "$runtime_glibc" | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1)
[ "$highest" = "$runtime_glibc" ] || fail "$binary needs GLIBC_$newest; the runtime image has $runtime_glibc"

# 3. Packed relative relocations (build.rs) need a loader that reads DT_RELR: glibc 2.36 or newer.
if readelf --version-info --wide "$binary" | grep -q GLIBC_ABI_DT_RELR; then
    relr=$(printf '%s\n%s\n' "2.36" "$runtime_glibc" | sort -t. -k1,1n -k2,2n -k3,3n | head -n 1)
    [ "$relr" = "2.36" ] || fail "$binary packs its relocations (DT_RELR), which glibc $runtime_glibc cannot load: build.rs"
    echo "check-static-deps: packed relocations (DT_RELR): the runtime's glibc $runtime_glibc loads them"
fi

echo "check-static-deps: ok, $binary runs on gcr.io/distroless/cc-debian12"
