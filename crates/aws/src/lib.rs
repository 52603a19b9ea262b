//! The AWS SDK configuration every AWS-backed daemon uses.
//!
//! The SDK crates are compiled without their default HTTP stacks (which would bring a second
//! TLS library and an old hyper); this crate builds one hyper 1 + rustls (ring) client with the
//! system's root certificates, the standard credential chain (environment, profile, web
//! identity / IRSA, ECS, instance metadata), an optional region and an optional endpoint URL
//! (DynamoDB Local, moto, a test server).

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig, timeout::TimeoutConfig};
use aws_credential_types::Credentials;
use aws_smithy_http_client::{
    Builder,
    tls::{Provider, rustls_provider::CryptoMode},
};

/// What a backend needs to reach one AWS service.
#[derive(Debug, Clone, Default)]
pub struct AwsTarget {
    /// Empty = the chain's region (`AWS_REGION`, profile); a region is required somewhere.
    pub region: String,
    /// Empty = the service's regional endpoint.
    pub endpoint_url: String,
    pub connect_timeout: Duration,
    /// Fixed credentials instead of the chain (tests against local servers).
    pub static_credentials: Option<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("no AWS region: set {field} or AWS_REGION (or a region in the AWS profile)")]
    NoRegion { field: String },
}

/// Loads the SDK configuration. `field` names the config key of the region in errors.
pub async fn sdk_config(target: &AwsTarget, field: &str) -> Result<SdkConfig, AwsError> {
    let http = Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(target.connect_timeout.max(Duration::from_millis(1)))
                .build(),
        );
    if !target.region.is_empty() {
        loader = loader.region(Region::new(target.region.clone()));
    }
    if !target.endpoint_url.is_empty() {
        loader = loader.endpoint_url(target.endpoint_url.clone());
    }
    if let Some((key, secret)) = &target.static_credentials {
        loader = loader.credentials_provider(Credentials::new(
            key.clone(),
            secret.clone(),
            None,
            None,
            "mangaassist-static",
        ));
    }
    let config = loader.load().await;
    if config.region().is_none() {
        return Err(AwsError::NoRegion {
            field: field.to_string(),
        });
    }
    Ok(config)
}
