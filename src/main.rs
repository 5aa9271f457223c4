//! The `redis-cluster-bootstrap` binary: reads the environment, sets up logging, runs the
//! pipeline and maps the result to the documented exit code.

use std::process::ExitCode;

use redis_cluster_bootstrap::commands;
use redis_cluster_bootstrap::config::{self, LogFormat, Settings};
use redis_cluster_bootstrap::shutdown::Shutdown;
use redis_cluster_bootstrap::{Error, one_line, run, telemetry};

fn main() -> ExitCode {
    // Logging first, in the format asked for, so that every error below (an unknown argument, a
    // bad variable) is one log line like every other error: one JSON object in json mode. When
    // BOOTSTRAP_LOG_FORMAT itself is wrong the format is unknown, and text is used to say so.
    telemetry::init(config::log_format_from_env().unwrap_or(LogFormat::Text));
    match std::env::args_os().nth(1) {
        None => {}
        Some(arg) if arg == "-h" || arg == "--help" => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        // The ACL users the production overlay defines, built from the list of commands the
        // tool sends (src/commands.rs).
        Some(arg) if arg == "--print-acl" => {
            print!("{}", commands::print_acl());
            return ExitCode::SUCCESS;
        }
        Some(arg) if arg == "-V" || arg == "--version" => {
            println!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            return fail(&Error::Config(format!(
                "unexpected argument {other:?}: configuration comes from BOOTSTRAP_* variables (see --help)"
            )));
        }
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => return fail(&e),
    };
    // One thread: the work is waiting on N sockets, and one thread keeps one malloc arena (two
    // worker threads cost ~1.3 MB of peak RSS at 100 nodes).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("start the async runtime");
    match runtime.block_on(async { run(settings, Shutdown::listen()).await }) {
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Logs the error the way every failure is logged and returns its exit code.
fn fail(e: &Error) -> ExitCode {
    tracing::error!(exit_code = e.exit_code() as u8, "{}", one_line(e));
    ExitCode::from(e.exit_code() as u8)
}
