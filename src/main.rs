//! The `redis-cluster-bootstrap` binary: reads the environment, sets up logging, and dispatches:
//! without a command it runs the bootstrap (the Job and the CronJob); `backup` and `restore` take
//! and restore backups (`src/backup/`, `src/restore/`); `handover`, `ready`, `rejoin`,
//! `install DIR`, `check-data DIR SERVER`, `users`, `watch` and `synced` are the commands that run
//! inside a Redis pod (`src/pod/`). Every
//! result maps to the documented exit code.

use std::process::ExitCode;

use redis_cluster_bootstrap::commands;
use redis_cluster_bootstrap::config::{self, LogFormat, Settings};
use redis_cluster_bootstrap::pod::{self, PodCommand, check_data, install};
use redis_cluster_bootstrap::shutdown::Shutdown;
use redis_cluster_bootstrap::{Error, backup, one_line, restore, run, telemetry};

/// A command of the binary other than the bootstrap itself.
enum Command {
    /// `backup`: one consistent backup under BOOTSTRAP_BACKUP_URL.
    Backup,
    /// `restore`: a backup into a formed, empty cluster.
    Restore,
    /// A command run inside a Redis pod.
    Pod(PodCommand),
}

fn main() -> ExitCode {
    // Logging first, in the format asked for, so that every error below (an unknown argument, a
    // bad variable) is one log line like every other error: one JSON object in json mode. When
    // BOOTSTRAP_LOG_FORMAT itself is wrong the format is unknown, and text is used to say so.
    telemetry::init(config::log_format_from_env().unwrap_or(LogFormat::Text));
    let args: Vec<String> = std::env::args_os()
        .skip(1)
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let command = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        [] => None,
        ["-h" | "--help"] => {
            print!("{}", config::help());
            return ExitCode::SUCCESS;
        }
        // The ACL users the production overlay defines, built from the list of commands the
        // tool sends (src/commands.rs).
        ["--print-acl"] => {
            print!("{}", commands::print_acl());
            return ExitCode::SUCCESS;
        }
        ["-V" | "--version"] => {
            println!("{} {}", env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        ["install", dir] => {
            return match install::install(std::path::Path::new(dir)) {
                Ok(path) => {
                    tracing::info!("install: copied to {}", path.display());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            };
        }
        // The server container's first step: can this server load the data on the volume?
        ["check-data", dir, server] => {
            return match check_data::check(std::path::Path::new(dir), server) {
                Ok(found) => {
                    tracing::info!("check-data: {found}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e),
            };
        }
        ["backup"] => Some(Command::Backup),
        ["restore"] => Some(Command::Restore),
        [one] if PodCommand::parse(one).is_some() => PodCommand::parse(one).map(Command::Pod),
        _ => {
            return fail(&Error::Config(format!(
                "unexpected arguments {args:?}: expected none (the bootstrap), backup, restore, \
                 handover, ready, rejoin, install DIR, check-data DIR SERVER, users, watch or \
                 synced; configuration comes from BOOTSTRAP_* variables (see --help)"
            )));
        }
    };
    let read = match command {
        // `users` makes no connection; `watch` and `synced` read the TLS files themselves.
        Some(Command::Pod(PodCommand::Users | PodCommand::Watch | PodCommand::Synced)) => {
            Settings::from_env_unread()
        }
        _ => Settings::from_env(),
    };
    let settings = match read {
        Ok(settings) => settings,
        Err(e) => return fail(&e),
    };
    // One thread: the work is waiting on N sockets, and one thread keeps one malloc arena (two
    // worker threads cost ~1.3 MB of peak RSS at 100 nodes).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("start the async runtime");
    let result = runtime.block_on(async {
        match command {
            None => run(settings, Shutdown::listen()).await.map(drop),
            Some(Command::Backup) => backup::run(settings, Shutdown::listen()).await,
            Some(Command::Restore) => restore::run(settings, Shutdown::listen()).await,
            Some(Command::Pod(command)) => pod::run(command, settings).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// Logs the error the way every failure is logged and returns its exit code.
fn fail(e: &Error) -> ExitCode {
    tracing::error!(exit_code = e.exit_code() as u8, "{}", one_line(e));
    ExitCode::from(e.exit_code() as u8)
}
