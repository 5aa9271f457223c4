//! Link options for the binary. On Linux with glibc, the binary's relative relocations are packed
//! (`-z pack-relative-relocs`, DT_RELR, glibc 2.36 and binutils 2.38 or newer: Debian 12, the
//! builder and the distroless runtime of the Dockerfile). Unpacked, the 26,000 relocations of a
//! position-independent binary this size are a 620 KB table the loader reads at every start:
//! pages of the table count in the peak memory of every run (measured in docs/benchmark.md).

fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
