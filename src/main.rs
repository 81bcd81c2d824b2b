use std::process::ExitCode;

use latchkey::{cli, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = cli::Cli::parse_args();
    telemetry::init(cli.global.log_format);
    match cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            // One line: the error and its causes.
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
