//! The `redis-cluster-bootstrap` binary: reads the environment, sets up logging, runs the
//! pipeline and maps the result to the documented exit code.

use std::process::ExitCode;

use redis_cluster_bootstrap::config::{self, Settings};
use redis_cluster_bootstrap::shutdown::Shutdown;
use redis_cluster_bootstrap::{ExitCode as Code, one_line, run, telemetry};

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        None => {}
        Some("-h" | "--help") => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        Some("-V" | "--version") => {
            println!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!(
                "error: unexpected argument {other:?}: configuration comes from BOOTSTRAP_* variables (see --help)"
            );
            return ExitCode::from(Code::BadConfig as u8);
        }
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    telemetry::init(settings.log_format);
    // One thread: the work is waiting on N sockets, and one thread keeps one malloc arena (two
    // worker threads cost ~1.3 MB of peak RSS at 100 nodes).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("start the async runtime");
    match runtime.block_on(async { run(settings, Shutdown::listen()).await }) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(exit_code = e.exit_code() as u8, "{}", one_line(&e));
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
