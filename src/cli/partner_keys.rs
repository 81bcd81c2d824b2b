//! `latchkey partner-keys create|list|revoke`.

use anyhow::bail;
use secrecy::ExposeSecret;

use super::{GlobalArgs, PartnerKeysCommand, open};
use crate::{app, error::Error, grpc::time::to_timestamp, security::HashParams};

pub async fn run(global: &GlobalArgs, command: PartnerKeysCommand) -> anyhow::Result<()> {
    let db = open(global).await?;
    match command {
        PartnerKeysCommand::Create { name } => {
            let params = HashParams {
                concurrency: 1,
                ..global.hash_params()
            };
            let issued = app::partner_keys::create(&db, params, &name)
                .await
                .map_err(|e| match e {
                    Error::BadRequest(_) => anyhow::anyhow!(
                        "--name must be 1 to 255 characters without control characters"
                    ),
                    e => e.into(),
                })?;
            eprintln!(
                "created partner key {} ({}); it is shown only now",
                issued.key_id,
                name.trim()
            );
            println!("{}", issued.key.expose_secret());
        }
        PartnerKeysCommand::List => {
            println!("{:<20}  {:<27}  {:<7}  NAME", "KEY_ID", "CREATED", "STATUS");
            // A page at a time, so a long list never sits in memory whole.
            const PAGE: u64 = 500;
            let mut after = None;
            loop {
                let (rows, more) = app::partner_keys::list(&db, after.as_ref(), PAGE).await?;
                for row in &rows {
                    let status = if row.revoke_time.is_some() {
                        "revoked"
                    } else {
                        "active"
                    };
                    println!(
                        "{:<20}  {:<27}  {:<7}  {}",
                        row.key_id,
                        to_timestamp(row.create_time).to_string(),
                        status,
                        row.name
                    );
                }
                after = rows.into_iter().last();
                if !more {
                    break;
                }
            }
        }
        PartnerKeysCommand::Revoke { key_id } => {
            match app::partner_keys::revoke(&db, &key_id).await {
                Ok(()) => eprintln!("revoked partner key {key_id}"),
                Err(Error::KeyNotFound(_)) => bail!("no active partner key {key_id}"),
                Err(Error::BadRequest(_)) => {
                    bail!("not a partner key id (lkp_ followed by 16 letters or digits)")
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
    db.close().await?;
    Ok(())
}
