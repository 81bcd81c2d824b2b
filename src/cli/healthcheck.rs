//! `latchkey healthcheck`: a grpc.health.v1 probe that exits 0 only when
//! the server answers SERVING.

use std::{path::PathBuf, process::ExitCode, time::Duration};

use anyhow::Context;
use latchkey_client::{Client, TlsOptions};

use super::read_file;

/// TLS for the probe, from `--tls-ca` (and a client identity for mTLS).
pub fn tls_options(
    ca: Option<PathBuf>,
    domain: Option<String>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
) -> anyhow::Result<Option<TlsOptions>> {
    let Some(ca) = ca else {
        return Ok(None);
    };
    Ok(Some(TlsOptions {
        ca_pem: Some(read_file(&ca)?),
        domain,
        identity: match (client_cert, client_key) {
            (Some(cert), Some(key)) => Some((read_file(&cert)?, read_file(&key)?)),
            _ => None,
        },
    }))
}

pub async fn run(
    addr: &str,
    service: String,
    timeout: Duration,
    tls: Option<TlsOptions>,
) -> anyhow::Result<ExitCode> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut builder = Client::builder(format!("{scheme}://{addr}")).timeout(timeout);
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let channel = builder
        .channel()
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    let response = HealthClient::new(channel)
        .check(HealthCheckRequest { service })
        .await
        .map_err(|status| anyhow::anyhow!("health check failed: {}", status.message()))?;
    let status = response.into_inner().status();
    if status == ServingStatus::Serving {
        println!("SERVING");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{}", status.as_str_name());
        Ok(ExitCode::FAILURE)
    }
}
