//! Master key rotation under running replicas: the keyring `new,old` rolls
//! out first, `rotate-master-key` re-seals in locked batches while a second
//! replica (a real process) keeps writing a credential, and after both
//! restart on `new` alone every value opens and the last write is there.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    time::Duration,
};

use latchkey::{
    grpc::proto::v1::{
        ConfigureSettingsRequest, Setting,
        client_configuration_service_client::ClientConfigurationServiceClient,
    },
    security::sealing::{MasterKey, setting_aad},
    store,
};

use crate::{
    client_config::configure,
    helpers::{eventually, spawn_app_with, with_sid},
    secrets::ServeProcess,
};

const COUNTER: &str = "ClientCredentials.Counter";

#[tokio::test(flavor = "multi_thread")]
async fn rotation_while_a_replica_writes_loses_nothing() {
    let old = MasterKey::generate().unwrap();
    let new = MasterKey::generate().unwrap();
    let ring = format!("{},{}", new.to_base64().as_str(), old.to_base64().as_str());
    let only_old = Arc::new(MasterKey::from_base64(old.to_base64().as_str()).unwrap());
    let app = spawn_app_with(move |s| s.master_key = Some(only_old)).await;
    configure(&app, "acme").await;

    // Step 1: every replica runs with `new,old`.
    let app = app
        .restart_with({
            let ring = ring.clone();
            move |s| s.master_key = Some(Arc::new(MasterKey::from_base64(&ring).unwrap()))
        })
        .await;
    let catalog = app.dir.path().join("catalog.toml");
    let mut replica = ServeProcess::start_with_env(
        &app.database_url,
        catalog.to_str().unwrap(),
        &[],
        &[("LATCHKEY_MASTER_KEY", &ring)],
    );
    let addr = replica.wait_for_addr().await;

    // The second replica writes a credential in a loop.
    let written = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writer = tokio::spawn({
        let (written, stop, partner_key) = (written.clone(), stop.clone(), app.partner_key.clone());
        async move {
            let mut client = ClientConfigurationServiceClient::connect(format!("http://{addr}"))
                .await
                .unwrap();
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                i += 1;
                client
                    .configure_settings(with_sid(
                        ConfigureSettingsRequest {
                            client_id: "acme".into(),
                            settings: vec![Setting {
                                name: COUNTER.into(),
                                value: format!("value-{i}"),
                                secret: false,
                            }],
                        },
                        &partner_key,
                    ))
                    .await
                    .expect("a write during the rotation");
                written.store(i, Ordering::SeqCst);
            }
        }
    });
    let at_least = |n: usize| {
        let written = written.clone();
        async move { (written.load(Ordering::SeqCst) >= n).then_some(()) }
    };
    eventually(
        Duration::from_secs(30),
        "writes before the rotation",
        || at_least(5),
    )
    .await;

    // Step 2: rotate, while the writes go on.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_latchkey"))
        .arg("rotate-master-key")
        .env("LATCHKEY_DATABASE_URL", &app.database_url)
        .env("LATCHKEY_MASTER_KEY", &ring)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(!stderr.contains(new.to_base64().as_str()));
    let after_rotation = written.load(Ordering::SeqCst);
    eventually(Duration::from_secs(30), "writes after the rotation", || {
        at_least(after_rotation + 5)
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    writer.await.unwrap();
    let last = written.load(Ordering::SeqCst);
    let (status, _) = replica.terminate().await;
    assert!(status.success());
    eprintln!(
        "{last} writes through the second replica, {after_rotation} before the rotation ended; {stderr}"
    );

    // Step 3: `new` alone.
    let only_new = Arc::new(MasterKey::from_base64(new.to_base64().as_str()).unwrap());
    let app = app
        .restart_with(move |s| s.master_key = Some(only_new))
        .await;
    let rows = store::clients::all_secret_settings(&app.db).await.unwrap();
    assert_eq!(rows.len(), 3, "LbApiKeyOwner, LbApiKey and the counter");
    for (row, client_id) in &rows {
        let opened = new
            .decrypt(&row.value, &setting_aad(client_id, &row.name))
            .unwrap_or_else(|_| panic!("{} does not open under the new key alone", row.name));
        assert_eq!(row.key_version.as_deref(), Some(new.version()));
        if row.name == COUNTER {
            assert_eq!(opened.as_str(), format!("value-{last}"), "the last write");
        }
    }
}
