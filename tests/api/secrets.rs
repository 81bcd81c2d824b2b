//! No key, secret or hash is ever written in the clear: not in the database
//! file, not in the logs (even at trace level).

use std::{
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use latchkey::grpc::proto::v1::{
    CreateIntegrationKeyRequest, DeleteIntegrationKeyRequest, GetIntegrationKeyRequest,
    ListIntegrationKeysRequest, integration_keys_service_client::IntegrationKeysServiceClient,
};
use sea_orm::EntityTrait;

use crate::{cli::latchkey, helpers::with_sid};

/// A `latchkey serve` process whose stderr is collected line by line.
pub struct ServeProcess {
    child: Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

/// A test that ends without stopping its server (or fails first) must not
/// leave it running: it would outlive its database, and keep polling it.
impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl ServeProcess {
    pub fn start(database_url: &str, catalog: &str) -> Self {
        Self::start_with(database_url, catalog, &[])
    }

    pub fn start_with(database_url: &str, catalog: &str, extra: &[&str]) -> Self {
        Self::start_with_env(database_url, catalog, extra, &[])
    }

    /// `start_with`, with environment variables set last (they override the
    /// test defaults, e.g. LATCHKEY_MASTER_KEY).
    pub fn start_with_env(
        database_url: &str,
        catalog: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(["serve", "--listen", "127.0.0.1:0", "--catalog", catalog])
            .args(extra)
            .args(["--log-format", "json"])
            .env("LATCHKEY_DATABASE_URL", database_url)
            .env("LATCHKEY_MASTER_KEY", crate::helpers::TEST_MASTER_KEY)
            .env("LATCHKEY_ARGON2_MEMORY_KIB", "256")
            .env("LATCHKEY_ARGON2_ITERATIONS", "1")
            .env("RUST_LOG", "trace")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn latchkey serve");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, log }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Polls the log for the "serving" line and returns the bound address.
    pub async fn wait_for_addr(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("server exited ({status}): {:?}", self.log);
            }
            let found = self.log.lock().unwrap().iter().find_map(|line| {
                if !line.contains("latchkey serving") {
                    return None;
                }
                let start = line.find("\"addr\":\"")? + 8;
                let end = start + line[start..].find('"')?;
                Some(line[start..end].to_owned())
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {:?}",
                self.log
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the process with SIGKILL (no shutdown, no flush) and reaps it.
    pub fn kill(mut self) {
        self.child.kill().expect("SIGKILL latchkey serve");
        self.child.wait().expect("reap latchkey serve");
    }

    /// Sends SIGTERM now.
    pub fn signal_term(&self) {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(killed.success());
    }

    pub async fn terminate(self) -> (std::process::ExitStatus, String) {
        self.signal_term();
        self.terminate_after_signal().await
    }

    /// Waits (bounded) for the exit status after a SIGTERM already sent.
    pub async fn terminate_after_signal(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after SIGTERM; its log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        // A clean stop ends with its last line; the reader thread may not
        // have read that far yet. (A failed one is the caller's to report,
        // with whatever was logged.)
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log.lock().unwrap().join("\n");
            if log.contains("latchkey stopped") || !status.success() {
                return (status, log);
            }
            assert!(
                Instant::now() < deadline,
                "the server exited 0 but its log has no \"latchkey stopped\": {log}"
            );
            drop(log);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[tokio::test]
async fn keys_never_reach_the_database_file_or_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = crate::test_db::TestDb::create(dir.path()).await;
    // On PostgreSQL (trust auth here: the password is accepted and unused)
    // the URL carries a password, which must not reach the log either.
    const DB_PASSWORD: &str = "db-password-7f3a91";
    let url = test_db.url.replacen(
        "postgres://postgres@",
        &format!("postgres://postgres:{DB_PASSWORD}@"),
        1,
    );
    let catalog = dir.path().join("catalog.toml");
    std::fs::write(&catalog, crate::helpers::TEST_CATALOG).unwrap();

    let created = latchkey(&url, &["partner-keys", "create", "--name", "ops"]);
    assert!(created.status.success());
    let partner_key = String::from_utf8(created.stdout).unwrap().trim().to_owned();

    let mut server = ServeProcess::start(&url, catalog.to_str().unwrap());
    let addr = server.wait_for_addr().await;
    let mut client = IntegrationKeysServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect");

    let mut api_keys = Vec::new();
    for display_name in ["first", "second", "third"] {
        let response = client
            .create_integration_key(with_sid(
                CreateIntegrationKeyRequest {
                    integration: "learner-activity".into(),
                    display_name: display_name.into(),
                    expire_time: None,
                    ..Default::default()
                },
                &partner_key,
            ))
            .await
            .expect("create")
            .into_inner();
        api_keys.push(response.api_key);
    }
    client
        .list_integration_keys(with_sid(
            ListIntegrationKeysRequest {
                integration: "learner-activity".into(),
                ..Default::default()
            },
            &partner_key,
        ))
        .await
        .expect("list");
    // A full key pasted where an id belongs: refused, and not logged.
    let _ = client
        .get_integration_key(with_sid(
            GetIntegrationKeyRequest {
                integration: "learner-activity".into(),
                key_id: api_keys[0].clone(),
            },
            &partner_key,
        ))
        .await
        .expect_err("a full key is not a key id");
    // A wrong partner key: refused, and not logged.
    let wrong_partner = latchkey::domain::ApiKey::generate(latchkey::domain::KeyKind::Partner)
        .unwrap()
        .expose_secret()
        .to_owned();
    let _ = client
        .list_integration_keys(with_sid(
            ListIntegrationKeysRequest::default(),
            &wrong_partner,
        ))
        .await
        .expect_err("wrong partner key");
    client
        .delete_integration_key(with_sid(
            DeleteIntegrationKeyRequest {
                integration: "learner-activity".into(),
                key_id: api_keys[2][..20].to_owned(),
            },
            &partner_key,
        ))
        .await
        .expect("delete");

    // The stored hashes, which must not be logged either.
    let db = latchkey::store::connect(&latchkey::store::DbOptions::new(url.clone()))
        .await
        .unwrap();
    let mut hashes: Vec<String> = entity::integration_key::Entity::find()
        .all(&db)
        .await
        .unwrap()
        .into_iter()
        .map(|row| row.key_hash)
        .collect();
    hashes.extend(
        entity::partner_key::Entity::find()
            .all(&db)
            .await
            .unwrap()
            .into_iter()
            .map(|row| row.key_hash),
    );
    assert_eq!(hashes.len(), 3, "two integration keys and one partner key");
    assert!(hashes.iter().all(|h| h.starts_with("$argon2id$")));

    let (status, log) = server.terminate().await;
    assert!(status.success(), "exit after SIGTERM: {status:?}\n{log}");
    assert!(log.contains("latchkey serving"), "the log was captured");
    // One span per call: method, caller (the partner key's public id), code.
    let create_call = log
        .lines()
        .find(|l| l.contains("call finished") && l.contains("CreateIntegrationKey"))
        .expect("a log event per call");
    assert!(
        create_call.contains(&format!("\"caller\":\"{}\"", &partner_key[..20])),
        "{create_call}"
    );
    assert!(create_call.contains("\"code\":\"OK\""), "{create_call}");
    assert!(create_call.contains("latency_us"), "{create_call}");
    assert!(
        log.lines()
            .any(|l| l.contains("call finished") && l.contains("\"code\":\"UNAUTHENTICATED\"")),
        "failed calls are logged with their code"
    );
    assert!(log.lines().count() > 10, "trace logging was on");

    let mut secrets: Vec<&str> = vec![
        &partner_key,
        &partner_key[21..],
        &wrong_partner,
        &wrong_partner[21..],
    ];
    for key in &api_keys {
        secrets.push(key);
        secrets.push(&key[21..]);
    }
    for secret in &secrets {
        assert!(!log.contains(secret), "a key reached the log");
    }
    assert!(
        !log.contains(DB_PASSWORD),
        "the database password reached the log"
    );
    for hash in &hashes {
        let digest = hash.rsplit('$').next().unwrap();
        assert!(!log.contains(digest), "a hash reached the log");
    }

    // Everything the database holds (for SQLite: every byte of its files).
    let stored = test_db.raw_contents(&db).await;
    db.close().await.unwrap();
    assert!(
        stored.contains(&api_keys[0][..20]),
        "key ids are stored (sanity)"
    );
    assert!(stored.contains("$argon2id$"), "hashes are stored (sanity)");
    for secret in &secrets {
        assert!(!stored.contains(secret), "a key is stored in the clear");
    }
}
