//! The `latchkey` binary's commands, run as a newcomer or a script would.

use std::process::{Command, Output};

use latchkey::store;

use crate::helpers::spawn_app;

pub fn latchkey(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .args(args)
        .env("LATCHKEY_DATABASE_URL", database_url)
        .env("LATCHKEY_MASTER_KEY", crate::helpers::TEST_MASTER_KEY)
        // Cheap argon2: these tests are about the commands, not the hash.
        .env("LATCHKEY_ARGON2_MEMORY_KIB", "256")
        .env("LATCHKEY_ARGON2_ITERATIONS", "1")
        .env_remove("RUST_LOG")
        .output()
        .expect("run latchkey")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A failed command: exit code 1 and a one-line `error: ...` on stderr.
#[track_caller]
fn assert_fails_with(output: &Output, needle: &str) {
    assert_eq!(output.status.code(), Some(1), "{}", stderr(output));
    let err = stderr(output);
    let lines: Vec<_> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    assert!(lines[0].contains(needle), "{needle:?} not in {err}");
}

fn temp_db() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.path().join("cli.db").display());
    (dir, url)
}

#[test]
fn partner_keys_create_list_revoke() {
    let (_dir, url) = temp_db();
    let created = latchkey(&url, &["partner-keys", "create", "--name", "ops team"]);
    assert!(created.status.success(), "{}", stderr(&created));
    let out = stdout(&created);
    // Only the key, on one line.
    assert_eq!(out.lines().count(), 1, "{out:?}");
    let key = out.trim_end();
    assert_eq!(key.len(), 70);
    assert!(key.starts_with("lkp_"));
    let key_id = &key[..20];

    let listed = latchkey(&url, &["partner-keys", "list"]);
    assert!(listed.status.success());
    let list = stdout(&listed);
    assert!(list.contains(key_id) && list.contains("ops team") && list.contains("active"));
    assert!(!list.contains(&key[21..]), "list must not show the secret");

    let revoked = latchkey(&url, &["partner-keys", "revoke", key_id]);
    assert!(revoked.status.success(), "{}", stderr(&revoked));
    let list = stdout(&latchkey(&url, &["partner-keys", "list"]));
    assert!(list.contains("revoked"));

    assert_fails_with(
        &latchkey(&url, &["partner-keys", "revoke", key_id]),
        "no active partner key",
    );
    // Pasting the whole key instead of its id fails without echoing it.
    let pasted = latchkey(&url, &["partner-keys", "revoke", key]);
    assert_fails_with(&pasted, "not a partner key id");
    assert!(!stderr(&pasted).contains(&key[21..]));
}

#[test]
fn bad_usage_exits_with_2() {
    let (_dir, url) = temp_db();
    for args in [
        &["partner-keys", "create"][..],
        &["no-such-command"][..],
        &["catalog", "apply"][..],
        &["serve", "--listen", "not-an-address"][..],
    ] {
        let output = latchkey(&url, args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn migrate_creates_a_fresh_database() {
    let (dir, url) = temp_db();
    let output = latchkey(&url, &["migrate"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.path().join("cli.db").exists());
    // Idempotent.
    assert!(latchkey(&url, &["migrate"]).status.success());
}

const CATALOG: &str = r#"
[[integrations]]
name = "learner-activity"
kind = "custom"
description = "Learner activity"
endpoints = ["course.v1.CourseService/GetOutline"]
"#;

#[tokio::test]
async fn catalog_apply_dry_run_apply_and_refusals() {
    let (dir, url) = temp_db();
    let file = dir.path().join("catalog.toml");
    std::fs::write(&file, CATALOG).unwrap();
    let file = file.to_str().unwrap();

    let dry = latchkey(&url, &["catalog", "apply", "--dry-run", file]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(
        stdout(&dry),
        "+ integration learner-activity (custom)\n+ grant learner-activity course.v1.CourseService/GetOutline\n"
    );
    let db = store::connect(&store::DbOptions::new(url.clone()))
        .await
        .unwrap();
    assert!(
        store::integrations::all(&db).await.unwrap().is_empty(),
        "dry run changed nothing"
    );

    let applied = latchkey(&url, &["catalog", "apply", file]);
    assert!(applied.status.success(), "{}", stderr(&applied));
    assert!(stderr(&applied).contains("applied catalog revision 1"));
    let again = latchkey(&url, &["catalog", "apply", file]);
    assert!(again.status.success());
    assert_eq!(stdout(&again), "");
    let revision = store::catalog::latest_revision(&db).await.unwrap().unwrap();
    assert_eq!(
        revision.id, 1,
        "an unchanged catalog records no new revision"
    );

    // Grants follow the file: one removed, one added.
    std::fs::write(
        dir.path().join("catalog.toml"),
        CATALOG.replace("GetOutline", "GetSyllabus"),
    )
    .unwrap();
    let changed = latchkey(&url, &["catalog", "apply", file]);
    assert!(changed.status.success(), "{}", stderr(&changed));
    assert_eq!(
        stdout(&changed),
        "- grant learner-activity course.v1.CourseService/GetOutline\n+ grant learner-activity course.v1.CourseService/GetSyllabus\n"
    );
    let before = store::integrations::all(&db).await.unwrap();

    // A bad file names the line and field, and changes nothing.
    std::fs::write(
        dir.path().join("catalog.toml"),
        CATALOG.replace("\"custom\"", "\"special\""),
    )
    .unwrap();
    let bad = latchkey(&url, &["catalog", "apply", file]);
    assert_fails_with(&bad, &format!("{file}:4:"));
    assert!(stderr(&bad).contains("integrations[0].kind"));
    assert_eq!(store::integrations::all(&db).await.unwrap(), before);

    let missing = latchkey(&url, &["catalog", "apply", "/no/such/catalog.toml"]);
    assert_fails_with(&missing, "cannot read catalog");
}

#[tokio::test(flavor = "multi_thread")]
async fn catalog_refuses_to_drop_an_integration_that_holds_keys() {
    use latchkey::grpc::proto::v1::CreateIntegrationKeyRequest;
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    client
        .create_integration_key(app.as_partner(CreateIntegrationKeyRequest {
            integration: "sandbox".into(),
            ..Default::default()
        }))
        .await
        .expect("create");
    let file = app.dir.path().join("smaller.toml");
    let smaller = crate::helpers::TEST_CATALOG
        .split("[[integrations]]")
        .filter(|part| !part.contains("\"sandbox\""))
        .collect::<Vec<_>>()
        .join("[[integrations]]");
    std::fs::write(&file, smaller).unwrap();
    let before = store::integrations::all(&app.db).await.unwrap();
    let output = latchkey(
        &app.database_url,
        &["catalog", "apply", file.to_str().unwrap()],
    );
    assert_fails_with(
        &output,
        "integration 'sandbox' is not in the catalog but holds 1 key(s)",
    );
    assert_eq!(store::integrations::all(&app.db).await.unwrap(), before);
}

// Multi-threaded: the in-process server must run while the test blocks on
// the child process.
#[tokio::test(flavor = "multi_thread")]
async fn healthcheck_exits_0_only_when_serving() {
    let app = spawn_app().await;
    let addr = app.addr.to_string();
    let ok = latchkey(&app.database_url, &["healthcheck", "--addr", &addr]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(stdout(&ok).trim(), "SERVING");
    let per_service = latchkey(
        &app.database_url,
        &[
            "healthcheck",
            "--addr",
            &addr,
            "--service",
            "latchkey.v1.IntegrationKeysService",
        ],
    );
    assert!(per_service.status.success());
    let unknown = latchkey(
        &app.database_url,
        &["healthcheck", "--addr", &addr, "--service", "nope.Service"],
    );
    assert_eq!(unknown.status.code(), Some(1));

    app.shutdown().await.expect("shutdown");
    let down = latchkey(
        "sqlite::memory:",
        &["healthcheck", "--addr", &addr, "--timeout", "2"],
    );
    assert_fails_with(&down, "cannot connect");
}

#[test]
fn global_options_go_before_or_after_the_command() {
    let (_dir, url) = temp_db();
    for args in [
        &["--database-url", url.as_str(), "migrate"][..],
        &["migrate", "--database-url", url.as_str()][..],
        &[
            "--log-format",
            "json",
            "partner-keys",
            "list",
            "--database-url",
            url.as_str(),
        ][..],
        &[
            "partner-keys",
            "--database-url",
            url.as_str(),
            "list",
            "--log-format",
            "json",
        ][..],
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_latchkey"))
            .args(args)
            .env(
                "LATCHKEY_DATABASE_URL",
                "sqlite:///nonexistent/dir/ignored.db",
            )
            .env_remove("RUST_LOG")
            .output()
            .expect("run latchkey");
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    }
    // serve's own options before another command: bad usage, saying why.
    let output = latchkey(&url, &["--listen", "127.0.0.1:0", "migrate"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("'--listen' is an option of 'serve'"),
        "{}",
        stderr(&output)
    );
}

/// Runs `latchkey` with `env` only (no LATCHKEY_* from the test helper).
fn latchkey_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_latchkey"));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("LATCHKEY_DATABASE_URL")
        .env_remove("LATCHKEY_CONFIG")
        .env("LATCHKEY_MASTER_KEY", crate::helpers::TEST_MASTER_KEY);
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().expect("run latchkey")
}

#[test]
fn options_layer_defaults_file_env_flags() {
    let dir = tempfile::tempdir().unwrap();
    let db = |name: &str| {
        let path = dir.path().join(name);
        (format!("sqlite://{}?mode=rwc", path.display()), path)
    };
    let (file_url, file_db) = db("from-file.db");
    let (env_url, env_db) = db("from-env.db");
    let (flag_url, flag_db) = db("from-flag.db");
    let config = dir.path().join("latchkey.toml");
    std::fs::write(
        &config,
        format!("database-url = \"{file_url}\"\nargon2-iterations = 1\nlisten = \"127.0.0.1:0\"\n"),
    )
    .unwrap();
    let config = config.to_str().unwrap();

    // The file over the defaults, by flag or by LATCHKEY_CONFIG.
    let output = latchkey_with_env(&["--config", config, "migrate"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(file_db.exists());
    std::fs::remove_file(&file_db).unwrap();
    let output = latchkey_with_env(&["migrate"], &[("LATCHKEY_CONFIG", config)]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(file_db.exists());

    // The environment over the file, and a flag over both.
    let env = [
        ("LATCHKEY_CONFIG", config),
        ("LATCHKEY_DATABASE_URL", env_url.as_str()),
    ];
    let output = latchkey_with_env(&["migrate"], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(env_db.exists());
    let output = latchkey_with_env(&["migrate", "--database-url", &flag_url], &env);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(flag_db.exists());

    // A key the file must not hold, or a value of the wrong type: a
    // one-line error naming it, nothing done.
    for (content, needle) in [
        ("no-such-option = 1\n", "no-such-option"),
        ("key-failure-burst = \"many\"\n", "key-failure-burst"),
        ("database-url = \n", "config file"),
    ] {
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, content).unwrap();
        let output = latchkey_with_env(&["--config", bad.to_str().unwrap(), "migrate"], &[]);
        assert_fails_with(&output, needle);
    }
    let output = latchkey_with_env(&["--config", "/nonexistent/latchkey.toml", "migrate"], &[]);
    assert_fails_with(&output, "cannot read config file");
}
