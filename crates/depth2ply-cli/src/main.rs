//! The depth2ply command-line tool: flags in, library calls, errors out.
//!
//! Exit status: 0 when every input succeeded, 1 when at least one failed (the others are still written),
//! 2 for usage errors (reported by clap, or by [`inputs::UsageError`] for flag combinations).

mod args;
mod config;
mod info;
mod inputs;
mod model;
mod run;
mod summary;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

fn main() -> ExitCode {
    let cli = args::Cli::parse(); // exits with status 2 on usage errors
    let result = match &cli.command {
        Some(args::Command::Info(info_args)) => info::run(info_args),
        None => config::RunConfig::from_args(&cli.convert).and_then(|config| run::run(&config)),
    };
    match result {
        Ok(status) => status.exit_code(),
        Err(err) if err.downcast_ref::<inputs::UsageError>().is_some() => {
            // Same look and exit status (2) as clap's own usage errors.
            args::Cli::command()
                .error(
                    clap::error::ErrorKind::ArgumentConflict,
                    summary::error_chain(&err),
                )
                .exit()
        }
        Err(err) => {
            eprintln!("depth2ply: error: {}", summary::error_chain(&err));
            ExitCode::FAILURE
        }
    }
}
