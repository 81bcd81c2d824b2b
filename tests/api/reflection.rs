//! Server reflection, v1 and v1alpha, as grpcurl uses it.

use tokio_stream::StreamExt;

use crate::helpers::spawn_app;

const EXPECTED_SERVICES: [&str; 7] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "latchkey.v1.AuditService",
    "latchkey.v1.ClientConfigurationService",
    "latchkey.v1.HealthService",
    "latchkey.v1.IntegrationKeysService",
];

/// Lists services and asks for the file defining `symbol`, over one
/// reflection stream, with the client of reflection version `$pb`; returns the
/// sorted service names and how many file descriptors came back. A macro
/// because v1 and v1alpha are distinct generated types of the same shape.
macro_rules! list_and_describe {
    ($pb:ident, $channel:expr, $symbol:expr) => {{
        use tonic_reflection::pb::$pb::{
            ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
            server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        };
        let request = |message| ServerReflectionRequest {
            host: String::new(),
            message_request: Some(message),
        };
        let requests = tokio_stream::iter([
            request(MessageRequest::ListServices(String::new())),
            request(MessageRequest::FileContainingSymbol($symbol.into())),
        ]);
        let mut responses = ServerReflectionClient::new($channel)
            .server_reflection_info(requests)
            .await
            .expect("reflection stream")
            .into_inner();
        let mut services: Vec<String> = Vec::new();
        let mut descriptors = 0;
        while let Some(response) = responses.next().await {
            match response.expect("response").message_response {
                Some(MessageResponse::ListServicesResponse(list)) => {
                    services = list.service.into_iter().map(|s| s.name).collect();
                }
                Some(MessageResponse::FileDescriptorResponse(files)) => {
                    descriptors = files.file_descriptor_proto.len();
                }
                other => panic!("unexpected reflection response {other:?}"),
            }
        }
        services.sort();
        (services, descriptors)
    }};
}

#[tokio::test]
async fn reflection_v1_lists_and_describes_every_service() {
    let app = spawn_app().await;
    let (services, descriptors) = list_and_describe!(
        v1,
        app.channel().await,
        "latchkey.v1.IntegrationKeysService.CreateIntegrationKey"
    );
    assert_eq!(services, EXPECTED_SERVICES);
    assert!(descriptors >= 1, "the file defining IntegrationKeysService");
}

#[tokio::test]
async fn reflection_v1alpha_serves_older_grpcurl() {
    let app = spawn_app().await;
    let (services, descriptors) =
        list_and_describe!(v1alpha, app.channel().await, "grpc.health.v1.Health");
    assert_eq!(services, EXPECTED_SERVICES);
    assert!(descriptors >= 1, "the file defining grpc.health.v1.Health");
}
