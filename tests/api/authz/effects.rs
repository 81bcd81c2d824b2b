//! Side effects of refused calls: what a mutating call could change, read
//! before and after, and what differs.

use std::fmt::Debug;

use entity::{client, client_setting, client_user, integration_key};
use latchkey::grpc::proto::v1::{
    ClientConfiguration, Decision, GetClientConfigurationRequest, GetIntegrationKeyRequest,
    IntegrationKey, ListIntegrationKeysRequest, Scope, VerifyUserCredentialsRequest,
    client_configuration_service_client::ClientConfigurationServiceClient,
    integration_keys_service_client::IntegrationKeysServiceClient,
};
use sea_orm::EntityTrait;
use tonic::Code;

use super::{
    CLIENT, ENDPOINT, INTEGRATION, Rpc,
    fixture::{Fixture, Target},
};

/// What a mutating call could change: its target as the partner sees it
/// through the API, and every row it could touch as the database holds it
/// (no server cache in between). A refused call must leave all of it as it
/// was.
pub(super) struct State {
    /// The keys the call is about, as the partner sees them: for Create all
    /// of `INTEGRATION`'s (so a new one shows), for Update, Delete and Roll
    /// the target key (none once deleted), none for calls about clients.
    keys: Vec<IntegrationKey>,
    /// `CLIENT`'s configuration as the partner sees it, for calls about
    /// clients (empty for calls about keys).
    configuration: ClientConfiguration,
    key_rows: Vec<integration_key::Model>,
    clients: Vec<client::Model>,
    setting_rows: Vec<client_setting::Model>,
    user_rows: Vec<client_user::Model>,
}

impl State {
    /// What differs in `after`, one line per changed row or field.
    fn changes(&self, after: &State) -> Vec<String> {
        let mut changes = Vec::new();
        let (old, new) = (&self.configuration, &after.configuration);
        diff(&mut changes, "API keys", &self.keys, &after.keys, |k| {
            k.key_id.clone()
        });
        diff(&mut changes, "API users", &old.users, &new.users, |u| {
            u.user.clone()
        });
        diff(
            &mut changes,
            "API settings",
            &old.settings,
            &new.settings,
            |s| s.name.clone(),
        );
        if old.update_time != new.update_time {
            changes.push(format!(
                "API configuration update_time {:?} -> {:?}",
                old.update_time, new.update_time
            ));
        }
        diff(
            &mut changes,
            "db integration_keys",
            &self.key_rows,
            &after.key_rows,
            |k| k.key_id.clone(),
        );
        diff(
            &mut changes,
            "db clients",
            &self.clients,
            &after.clients,
            |c| c.client_id.clone(),
        );
        diff(
            &mut changes,
            "db client_settings",
            &self.setting_rows,
            &after.setting_rows,
            |s| (s.client_pk, s.name.clone()),
        );
        diff(
            &mut changes,
            "db client_users",
            &self.user_rows,
            &after.user_rows,
            |u| (u.client_pk, u.user.clone()),
        );
        changes
    }
}

/// Adds to `changes` the rows of `before` and `after` that differ, matched
/// by `key`: removed, added or changed (a redacted field, such as a key
/// hash, changes with identical-looking rows), and the row count.
fn diff<T: PartialEq + Debug, K: PartialEq + Debug>(
    changes: &mut Vec<String>,
    what: &str,
    before: &[T],
    after: &[T],
    key: impl Fn(&T) -> K,
) {
    for old in before {
        match after.iter().find(|new| key(new) == key(old)) {
            None => changes.push(format!("{what}: {:?} removed", key(old))),
            Some(new) if new != old => {
                changes.push(format!(
                    "{what}: {:?} changed: {old:?} -> {new:?}",
                    key(old)
                ));
            }
            Some(_) => {}
        }
    }
    for new in after {
        if !before.iter().any(|old| key(old) == key(new)) {
            changes.push(format!("{what}: {:?} added: {new:?}", key(new)));
        }
    }
    if before.len() != after.len() {
        changes.push(format!("{what}: {} -> {} rows", before.len(), after.len()));
    }
}

/// The side-effect checks of one refused call: how many were made, and what
/// they found.
#[derive(Default)]
pub(super) struct Effects {
    pub(super) made: usize,
    pub(super) found: Vec<String>,
}

impl Effects {
    fn check(&mut self, holds: bool, problem: impl FnOnce() -> String) {
        self.made += 1;
        if !holds {
            self.found.push(format!("side effect: {}", problem()));
        }
    }
}

impl Fixture {
    /// What `rpc` about `target` could change (see `State`).
    pub(super) async fn state(&self, rpc: Rpc, target: &Target) -> State {
        let mut keys_client = IntegrationKeysServiceClient::new(self.channel.clone());
        let mut keys = Vec::new();
        let mut configuration = ClientConfiguration::default();
        match rpc {
            Rpc::CreateIntegrationKey => {
                let mut page_token = String::new();
                loop {
                    let page = keys_client
                        .list_integration_keys(self.app.as_partner(ListIntegrationKeysRequest {
                            integration: INTEGRATION.into(),
                            page_size: 1000,
                            page_token,
                        }))
                        .await
                        .expect("list keys as the partner")
                        .into_inner();
                    keys.extend(page.keys);
                    if page.next_page_token.is_empty() {
                        break;
                    }
                    page_token = page.next_page_token;
                }
            }
            Rpc::UpdateIntegrationKey | Rpc::DeleteIntegrationKey | Rpc::RollIntegrationKey => {
                let key_id = match &target.key {
                    Some((key_id, _)) => key_id.clone(),
                    None => self.shared_key_id.clone(),
                };
                let answer = keys_client
                    .get_integration_key(self.app.as_partner(GetIntegrationKeyRequest {
                        integration: INTEGRATION.into(),
                        key_id,
                    }))
                    .await;
                match answer {
                    Ok(answer) => keys.extend(answer.into_inner().key),
                    Err(status) if status.code() == Code::NotFound => {}
                    Err(status) => panic!("get the key as the partner: {status:?}"),
                }
            }
            _ => {
                configuration = ClientConfigurationServiceClient::new(self.channel.clone())
                    .get_client_configuration(self.app.as_partner(GetClientConfigurationRequest {
                        client_id: CLIENT.into(),
                    }))
                    .await
                    .expect("get the configuration as the partner")
                    .into_inner()
                    .configuration
                    .expect("configuration");
            }
        }
        // Verifications record a key's last use in the background, and a
        // key's state follows from the time: neither is a call's doing.
        for key in &mut keys {
            key.last_use_time = None;
            key.state = 0;
        }
        let db = &self.app.db;
        let mut key_rows = integration_key::Entity::find().all(db).await.expect("keys");
        for row in &mut key_rows {
            row.last_use_time = None;
        }
        State {
            keys,
            configuration,
            key_rows,
            clients: client::Entity::find().all(db).await.expect("clients"),
            setting_rows: client_setting::Entity::find()
                .all(db)
                .await
                .expect("settings"),
            user_rows: client_user::Entity::find().all(db).await.expect("users"),
        }
    }

    /// After `rpc` was refused: nothing in `before` changed, and the
    /// target is still there and still works.
    pub(super) async fn unchanged(
        &self,
        rpc: Rpc,
        cell: usize,
        target: &Target,
        before: &State,
    ) -> Effects {
        let mut effects = Effects::default();
        let changes = before.changes(&self.state(rpc, target).await);
        effects.check(changes.is_empty(), || changes.join("; "));
        if let Some((key_id, api_key)) = &target.key {
            let decision = self.app.verify(api_key, ENDPOINT).await.decision();
            effects.check(decision == Decision::Allowed, || {
                format!("key {key_id} no longer verifies: {decision:?}")
            });
        }
        if let Some((user, api_key)) = &target.user {
            let answer = ClientConfigurationServiceClient::new(self.channel.clone())
                .verify_user_credentials(VerifyUserCredentialsRequest {
                    client_id: CLIENT.into(),
                    user: user.clone(),
                    api_key: api_key.clone(),
                })
                .await
                .map(tonic::Response::into_inner);
            effects.check(
                answer
                    .as_ref()
                    .is_ok_and(|a| a.valid && a.scope() == Scope::Client),
                || format!("{user}'s old key no longer verifies as CLIENT: {answer:?}"),
            );
        }
        if rpc == Rpc::Configure {
            let client_id = format!("fresh-{cell}");
            let answer = ClientConfigurationServiceClient::new(self.channel.clone())
                .get_client_configuration(self.app.as_partner(GetClientConfigurationRequest {
                    client_id: client_id.clone(),
                }))
                .await;
            effects.check(
                answer.as_ref().is_err_and(|s| s.code() == Code::NotFound),
                || format!("client {client_id} exists: {answer:?}"),
            );
        }
        effects
    }
}
