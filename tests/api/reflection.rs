//! Server reflection, v1 and v1alpha, as grpcurl uses it.

use tokio_stream::StreamExt;
use tonic::transport::Channel;

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

async fn v1_services(channel: Channel) -> (Vec<String>, usize) {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(channel);
    let requests = tokio_stream::iter([
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "latchkey.v1.IntegrationKeysService.CreateIntegrationKey".into(),
            )),
        },
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .expect("reflection stream")
        .into_inner();
    let mut services = Vec::new();
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
}

async fn v1alpha_services(channel: Channel) -> (Vec<String>, usize) {
    use tonic_reflection::pb::v1alpha::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let mut client = ServerReflectionClient::new(channel);
    let requests = tokio_stream::iter([
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::ListServices(String::new())),
        },
        ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(
                "grpc.health.v1.Health".into(),
            )),
        },
    ]);
    let mut responses = client
        .server_reflection_info(requests)
        .await
        .expect("reflection stream")
        .into_inner();
    let mut services = Vec::new();
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
}

#[tokio::test]
async fn reflection_v1_lists_and_describes_every_service() {
    let app = spawn_app().await;
    let (services, descriptors) = v1_services(app.channel().await).await;
    assert_eq!(services, EXPECTED_SERVICES);
    assert!(descriptors >= 1, "the file defining IntegrationKeysService");
}

#[tokio::test]
async fn reflection_v1alpha_serves_older_grpcurl() {
    let app = spawn_app().await;
    let (services, descriptors) = v1alpha_services(app.channel().await).await;
    assert_eq!(services, EXPECTED_SERVICES);
    assert!(descriptors >= 1, "the file defining grpc.health.v1.Health");
}
