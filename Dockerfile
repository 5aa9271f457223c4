# syntax=docker/dockerfile:1
#
# The bootstrap image: a static-enough Rust binary on distroless, running as non-root.
#   docker build -t REGISTRY/redis-cluster-bootstrap:TAG .
#
# Base images are pinned and can be overridden, e.g. to pin by digest or to use a mirror:
#   docker build --build-arg RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot@sha256:... .
# The builder must use the same Debian release as the runtime (bookworm = debian12): the binary
# links glibc dynamically and must not need a newer glibc than the runtime has.
# scripts/check-static-deps.sh checks the libraries a release build needs against this runtime.
ARG RUST_IMAGE=rust:1.95.0-slim-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot

# Dependencies only, in their own layer: rebuilt when Cargo.toml or Cargo.lock change, not when the
# source does. The crate itself is an empty placeholder here; its artifacts are then cleaned so the
# real source is always compiled below, whatever the timestamps of the copied files.
FROM ${RUST_IMAGE} AS dependencies
WORKDIR /build
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && cargo build --locked --release \
 && cargo clean --release --package redis-cluster-bootstrap \
 && rm -rf src

# The program itself.
FROM dependencies AS build
COPY src ./src
RUN cargo build --locked --release \
 && cp target/release/redis-cluster-bootstrap /redis-cluster-bootstrap

# The runtime: glibc, libgcc and CA certificates, no shell, no package manager.
FROM ${RUNTIME_IMAGE}
COPY --from=build /redis-cluster-bootstrap /usr/local/bin/redis-cluster-bootstrap
# distroless' `nonroot` user; the Job's securityContext asks for the same uid.
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/redis-cluster-bootstrap"]
