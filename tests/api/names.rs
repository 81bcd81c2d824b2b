//! Names compare byte for byte on every backend: a name with a trailing
//! space is never taken for the name without it (MariaDB's `utf8mb4_bin`
//! would: it pads spaces), and user names that begin or end with
//! whitespace are refused.

use latchkey::{
    grpc::proto::v1::{
        Scope, SetUserCredentialsRequest, VerifyUserCredentialsRequest,
        client_configuration_service_client::ClientConfigurationServiceClient,
    },
    store,
};
use tonic::Code;

use crate::{
    client_config::{ADMIN_KEY, configure},
    helpers::{bad_request_fields, basic, spawn_app},
};

#[tokio::test]
async fn a_trailing_space_is_another_name_and_is_refused_in_user_names() {
    let app = spawn_app().await;
    configure(&app, "acme").await;
    let mut client = ClientConfigurationServiceClient::new(app.channel().await);

    // The store compares bytes, whatever the backend's collation.
    let acme = store::clients::find(&app.db, "acme")
        .await
        .unwrap()
        .unwrap();
    assert!(
        store::clients::find_user(&app.db, acme.id, "admin")
            .await
            .unwrap()
            .is_some()
    );
    for padded in ["admin ", "admin  ", " admin"] {
        assert!(
            store::clients::find_user(&app.db, acme.id, padded)
                .await
                .unwrap()
                .is_none(),
            "{padded:?} found as 'admin'"
        );
    }
    assert!(
        store::clients::find(&app.db, "acme ")
            .await
            .unwrap()
            .is_none()
    );

    // Over the API: refused as malformed, never answered as admin.
    let verify = client
        .verify_user_credentials(VerifyUserCredentialsRequest {
            client_id: "acme".into(),
            user: "admin ".into(),
            api_key: ADMIN_KEY.into(),
        })
        .await;
    assert_eq!(bad_request_fields(verify), ["user"]);
    let set = client
        .set_user_credentials(app.as_partner(SetUserCredentialsRequest {
            client_id: "acme".into(),
            user: " admin".into(),
            api_key: "another-key-0123456789abcdef".into(),
            scope: Scope::System.into(),
        }))
        .await;
    assert_eq!(bad_request_fields(set), ["user"]);
    let as_padded = client
        .get_client_configuration(basic(
            latchkey::grpc::proto::v1::GetClientConfigurationRequest {
                client_id: "acme".into(),
            },
            "admin ",
            ADMIN_KEY,
        ))
        .await
        .expect_err("a padded name is nobody");
    assert_eq!(as_padded.code(), Code::Unauthenticated);
    // The exact name still works.
    let valid = client
        .verify_user_credentials(VerifyUserCredentialsRequest {
            client_id: "acme".into(),
            user: "admin".into(),
            api_key: ADMIN_KEY.into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(valid.valid);
}
