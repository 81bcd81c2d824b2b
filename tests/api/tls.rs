//! TLS and mutual TLS, with certificates from a CA generated for the test.

use std::time::Duration;

use latchkey::config::{Settings, TlsSettings};
use latchkey_client::{Client, TlsOptions};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use tokio::net::TcpListener;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use crate::{helpers::eventually, test_db::TestDb};

struct Pki {
    ca_pem: String,
    server: (String, String),
    client: (String, String),
}

fn new_pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf = |names: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(names)
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca_pem: ca_cert.pem(),
        server: leaf(vec!["localhost".into()]),
        client: leaf(vec!["resource-server.internal".into()]),
    }
}

fn tls_options(pki: &Pki, with_identity: bool) -> TlsOptions {
    TlsOptions {
        ca_pem: Some(pki.ca_pem.clone().into_bytes()),
        domain: Some("localhost".into()),
        identity: with_identity.then(|| {
            (
                pki.client.0.clone().into_bytes(),
                pki.client.1.clone().into_bytes(),
            )
        }),
    }
}

/// A TLS server on a fresh database; returns its address, the guards that
/// keep it alive and, with `http`, the address of its HTTP listener (same
/// TLS settings). Without `http` it starts through `server::run`, as
/// `latchkey serve` does (its startup probe server speaks TLS too); with
/// it, the HTTP listener is bound here first and handed over (`serve_on`),
/// so no other test can take its port in between. A server that fails says
/// why on stderr.
async fn tls_server(
    pki: &Pki,
    mutual: bool,
    http: bool,
) -> (
    String,
    tempfile::TempDir,
    TestDb,
    tokio::sync::oneshot::Sender<()>,
    Option<std::net::SocketAddr>,
) {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::create(dir.path()).await;
    let mut settings = Settings::new(test_db.url.clone());
    settings.hash = crate::helpers::test_hash_params();
    settings.master_key = Some(std::sync::Arc::new(
        latchkey::security::sealing::MasterKey::from_base64(crate::helpers::TEST_MASTER_KEY)
            .unwrap(),
    ));
    settings.tls = Some(TlsSettings {
        cert_pem: pki.server.0.clone().into_bytes(),
        key_pem: pki.server.1.clone().into_bytes().into(),
        client_ca_pem: mutual.then(|| pki.ca_pem.clone().into_bytes()),
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    let http_addr = if http {
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http_listener.local_addr().unwrap();
        let state = latchkey::server::prepare(&settings).await.expect("prepare");
        tokio::spawn(async move {
            let served = latchkey::server::serve_on(
                state,
                settings,
                listener,
                Some(http_listener),
                shutdown,
            )
            .await;
            if let Err(e) = served {
                eprintln!("the TLS server failed: {e:#}");
            }
        });
        Some(http_addr)
    } else {
        tokio::spawn(async move {
            if let Err(e) = latchkey::server::run(settings, listener, shutdown).await {
                eprintln!("the TLS server failed: {e:#}");
            }
        });
        None
    };
    (addr, dir, test_db, stop, http_addr)
}

/// `GET path` over HTTPS/1.1 trusting the test CA, with the client
/// certificate when `identity`: the status and body, or why it failed.
async fn https_get(
    addr: std::net::SocketAddr,
    pki: &Pki,
    identity: bool,
    path: &str,
) -> Result<(u16, String), String> {
    use http_body_util::BodyExt;
    use tokio_rustls::rustls::{
        ClientConfig, RootCertStore,
        pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject},
    };
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if identity {
        builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(pki.client.0.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pki.client.1.as_bytes()).unwrap(),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let request = hyper::Request::get(path)
        .header("host", "localhost")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_http_listener_speaks_the_same_mutual_tls() {
    let pki = new_pki();
    let (_addr, _dir, _db, _stop, http_addr) = tls_server(&pki, true, true).await;
    let http_addr = http_addr.expect("an HTTP listener");
    let ready = eventually(Duration::from_secs(30), "the HTTPS listener", || async {
        https_get(http_addr, &pki, true, "/healthz")
            .await
            .ok()
            .filter(|(status, _)| *status == 200)
    })
    .await;
    assert_eq!(ready.1, r#"{"status":"SERVING"}"#);
    let openapi = https_get(http_addr, &pki, true, "/openapi.json")
        .await
        .unwrap();
    assert_eq!(openapi.0, 200);
    assert!(
        https_get(http_addr, &pki, false, "/healthz").await.is_err(),
        "no client certificate: refused"
    );
    // Plain HTTP on the TLS port gets no answer.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let plain = tokio::time::timeout(
        Duration::from_secs(20),
        client.get(format!("http://{http_addr}/healthz").parse().unwrap()),
    )
    .await;
    assert!(!matches!(plain, Ok(Ok(_))), "plaintext is refused");
}

async fn health_over(addr: &str, tls: Option<TlsOptions>) -> Result<i32, String> {
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut builder = Client::builder(format!("{scheme}://{addr}")).timeout(Duration::from_secs(5));
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let client = builder.connect().await.map_err(|e| e.to_string())?;
    HealthClient::new(client.channel())
        .check(HealthCheckRequest::default())
        .await
        .map(|r| r.into_inner().status)
        .map_err(|s| format!("{}: {}", s.code(), s.message()))
}

#[tokio::test]
async fn tls_serves_only_tls_clients_that_trust_the_ca() {
    let pki = new_pki();
    let (addr, _dir, _db, _stop, _) = tls_server(&pki, false, false).await;
    eventually(Duration::from_secs(30), "the TLS server", || async {
        health_over(&addr, Some(tls_options(&pki, false)))
            .await
            .ok()
            .filter(|status| *status == 1)
    })
    .await;
    assert!(
        health_over(&addr, None).await.is_err(),
        "plaintext is refused"
    );
    let untrusted = TlsOptions {
        ca_pem: Some(new_pki().ca_pem.into_bytes()),
        ..tls_options(&pki, false)
    };
    assert!(
        health_over(&addr, Some(untrusted)).await.is_err(),
        "another CA is refused"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_requires_a_client_certificate() {
    let pki = new_pki();
    let (addr, dir, _db, _stop, _) = tls_server(&pki, true, false).await;
    eventually(Duration::from_secs(30), "the mTLS server", || async {
        health_over(&addr, Some(tls_options(&pki, true)))
            .await
            .ok()
            .filter(|status| *status == 1)
    })
    .await;
    assert!(
        health_over(&addr, Some(tls_options(&pki, false)))
            .await
            .is_err(),
        "no client certificate: refused"
    );

    // The probe command speaks (m)TLS too.
    let file = |name: &str, content: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, content).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let ca = file("ca.pem", &pki.ca_pem);
    let cert = file("client.pem", &pki.client.0);
    let key = file("client.key", &pki.client.1);
    let probe = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "healthcheck",
            "--addr",
            &addr,
            "--tls-ca",
            &ca,
            "--tls-domain",
            "localhost",
        ])
        .args(["--tls-client-cert", &cert, "--tls-client-key", &key])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    let without = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args([
            "healthcheck",
            "--addr",
            &addr,
            "--tls-ca",
            &ca,
            "--tls-domain",
            "localhost",
        ])
        .output()
        .unwrap();
    assert!(!without.status.success());
}
