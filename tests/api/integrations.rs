//! ListIntegrations and GetIntegration: the catalog as the API shows it.

use latchkey::grpc::proto::v1::{GetIntegrationRequest, IntegrationKind, ListIntegrationsRequest};
use tonic::Code;

use crate::helpers::{assert_status, bad_request_fields, spawn_app};

#[tokio::test]
async fn list_integrations_returns_the_catalog_by_name_in_pages() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let all = client
        .list_integrations(app.as_partner(ListIntegrationsRequest::default()))
        .await
        .expect("list")
        .into_inner();
    let names: Vec<_> = all.integrations.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["learner-activity", "reports", "sandbox"]);
    assert!(all.next_page_token.is_empty());
    let learner = &all.integrations[0];
    assert_eq!(learner.kind(), IntegrationKind::Custom);
    assert_eq!(
        learner.description,
        "Learner activity API calling the course API"
    );
    assert_eq!(
        learner.endpoints,
        ["course.v1.CourseService/GetOutline", "permissions.v1.*"]
    );
    assert_eq!(all.integrations[1].kind(), IntegrationKind::Builtin);
    assert!(all.integrations[2].endpoints.is_empty());

    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let page = client
            .list_integrations(app.as_partner(ListIntegrationsRequest {
                page_size: 2,
                page_token: token,
            }))
            .await
            .expect("page")
            .into_inner();
        paged.extend(page.integrations);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(paged, all.integrations);

    for (page_size, page_token) in [(-1, ""), (1, "junk!")] {
        let fields = bad_request_fields(
            client
                .list_integrations(app.as_partner(ListIntegrationsRequest {
                    page_size,
                    page_token: page_token.into(),
                }))
                .await,
        );
        assert_eq!(fields.len(), 1);
    }
}

#[tokio::test]
async fn get_integration_returns_one_or_not_found() {
    let app = spawn_app().await;
    let mut client = app.keys_client().await;
    let got = client
        .get_integration(app.as_partner(GetIntegrationRequest {
            name: "reports".into(),
        }))
        .await
        .expect("get")
        .into_inner()
        .integration
        .expect("integration");
    assert_eq!(got.name, "reports");
    assert_eq!(got.kind(), IntegrationKind::Builtin);
    assert_eq!(got.endpoints, ["reports.v1.*"]);

    assert_status(
        client
            .get_integration(app.as_partner(GetIntegrationRequest {
                name: "nope".into(),
            }))
            .await,
        Code::NotFound,
        "Integration 'nope' not found",
    );
    assert_eq!(
        bad_request_fields(
            client
                .get_integration(app.as_partner(GetIntegrationRequest { name: "".into() }))
                .await
        ),
        ["name"]
    );
}
