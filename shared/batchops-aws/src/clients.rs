//! The AWS SDK clients batchops builds from one `SdkConfig`: its own ([`Clients`]) and a job
//! role's ([`DataClients`]). A leaf: the adapters and the role cache build on it.

use aws_config::BehaviorVersion;

/// Counts the client's requests when built with the `metering` feature (`make cost`,
/// `make bench-scale`); the functions as deployed carry no interceptor.
macro_rules! metered {
    ($builder:expr, $class:ident) => {{
        #[cfg(feature = "metering")]
        let builder = $builder.interceptor(crate::metering::CountRequests::$class);
        #[cfg(not(feature = "metering"))]
        let builder = $builder;
        builder
    }};
}

/// The AWS clients, built from one `SdkConfig`.
#[derive(Clone, Debug)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub events: aws_sdk_eventbridge::Client,
    /// The configuration they were built from (job roles are assumed with it).
    pub sdk: aws_config::SdkConfig,
    /// True when an endpoint other than AWS's is configured (an emulator such as moto).
    pub custom_endpoint: bool,
}

/// The clients a job's requests go through, built with the job role's credentials.
#[derive(Clone, Debug)]
pub struct DataClients {
    pub s3: aws_sdk_s3::Client,
    /// S3 for task operations: SDK retries off, because the executor retries transient
    /// failures itself with its own policy (and reports the last error).
    pub s3_ops: aws_sdk_s3::Client,
    /// Lambda for `LambdaInvoke` tasks, SDK retries off like `s3_ops`
    /// (`AWS_ENDPOINT_URL_LAMBDA` points it at a local Invoke API such as `cargo lambda watch`).
    pub lambda: aws_sdk_lambda::Client,
}

fn s3_config(sdk: &aws_config::SdkConfig) -> aws_sdk_s3::config::Builder {
    let custom_endpoint = sdk.endpoint_url().is_some() || std::env::var("AWS_ENDPOINT_URL_S3").is_ok();
    aws_sdk_s3::config::Builder::from(sdk)
        .force_path_style(custom_endpoint)
        // S3-compatible stores differ in their support of the SDK's default checksums.
        .request_checksum_calculation(aws_sdk_s3::config::RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(aws_sdk_s3::config::ResponseChecksumValidation::WhenRequired)
}

impl Clients {
    pub async fn from_env() -> Clients {
        let sdk = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Clients::from_sdk_config(&sdk)
    }

    pub fn from_sdk_config(sdk: &aws_config::SdkConfig) -> Clients {
        let custom_endpoint = sdk.endpoint_url().is_some()
            || std::env::var("AWS_ENDPOINT_URL").is_ok()
            || std::env::var("AWS_ENDPOINT_URL_DYNAMODB").is_ok();
        Clients {
            s3: aws_sdk_s3::Client::from_conf(metered!(s3_config(sdk), ORCHESTRATION).build()),
            sqs: aws_sdk_sqs::Client::from_conf(
                metered!(aws_sdk_sqs::config::Builder::from(sdk), ORCHESTRATION).build(),
            ),
            dynamodb: aws_sdk_dynamodb::Client::from_conf(
                metered!(aws_sdk_dynamodb::config::Builder::from(sdk), ORCHESTRATION).build(),
            ),
            events: aws_sdk_eventbridge::Client::from_conf(
                metered!(aws_sdk_eventbridge::config::Builder::from(sdk), ORCHESTRATION).build(),
            ),
            sdk: sdk.clone(),
            custom_endpoint,
        }
    }

    /// S3 and Lambda clients from `sdk` (a job role's configuration).
    pub fn data_clients(sdk: &aws_config::SdkConfig) -> DataClients {
        DataClients {
            s3: aws_sdk_s3::Client::from_conf(metered!(s3_config(sdk), ORCHESTRATION).build()),
            s3_ops: aws_sdk_s3::Client::from_conf(
                metered!(s3_config(sdk).retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled()), TASK).build(),
            ),
            lambda: aws_sdk_lambda::Client::from_conf(
                metered!(
                    aws_sdk_lambda::config::Builder::from(sdk)
                        .retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled()),
                    TASK
                )
                .build(),
            ),
        }
    }
}
