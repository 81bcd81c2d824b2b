use std::process::ExitCode;

use latchkey::{cli, telemetry};

/// `latchkey bench`: part of this binary only, not of the library.
mod bench;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse_args();
    telemetry::init(cli.global.log_format);
    let outcome = match cli.command {
        Some(cli::Command::Bench(args)) => bench::command(args).await.map(|()| ExitCode::SUCCESS),
        command => cli::run(cli::Cli { command, ..cli }).await,
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // One line: the error and its causes.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
