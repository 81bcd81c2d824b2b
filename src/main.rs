use std::process::ExitCode;

use latchkey::{cli, telemetry};

/// `latchkey bench`: part of this binary only, not of the library.
mod bench;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = match cli::Cli::parse_args().with_config_file() {
        Ok(cli) => cli,
        Err(error) => return fail(&error),
    };
    telemetry::init(cli.global.log_format());
    let outcome = match cli.command {
        Some(cli::Command::Bench(args)) => bench::command(args).await.map(|()| ExitCode::SUCCESS),
        command => cli::run(cli::Cli { command, ..cli }).await,
    };
    outcome.unwrap_or_else(|error| fail(&error))
}

/// One line on stderr: the error and its causes.
fn fail(error: &anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}
