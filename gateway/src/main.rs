//! The `tollgate` binary: parses the command line and hands over to the library.

use clap::Parser;

/// mimalloc instead of the system allocator: a proxy allocates and frees small buffers and
/// header maps for every request, and glibc's malloc/free were about 13 % of the gateway's
/// CPU under load (see the README's Performance section). Built without transparent huge
/// pages (the workspace's `no_thp` feature): with them an idle gateway held 47 MB instead of
/// 39 MB, at the same speed.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    tollgate::main_with(tollgate::Cli::parse())
}
