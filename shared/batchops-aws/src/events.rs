//! Status-change events on an EventBridge bus (PutEvents), one entry per announcement.

use async_trait::async_trait;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use batchops_core::events::{Events, JobEvent, DETAIL_TYPE, SOURCE};
use batchops_core::retry::is_transient;
use batchops_core::{Error, Result};

use crate::errors::backend;

pub struct EventBridgeEvents {
    client: aws_sdk_eventbridge::Client,
    /// The bus name or ARN (`default`: the account's default bus).
    bus: String,
}

impl EventBridgeEvents {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: &str) -> Self {
        EventBridgeEvents { client, bus: bus.to_string() }
    }
}

#[async_trait]
impl Events for EventBridgeEvents {
    async fn publish(&self, event: &JobEvent) -> Result<()> {
        let entry = PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(SOURCE)
            .detail_type(DETAIL_TYPE)
            .resources(event.detail["jobArn"].as_str().unwrap_or_default())
            .detail(event.detail.to_string())
            .build();
        let out = self.client.put_events().entries(entry).send().await.map_err(|e| backend("PutEvents", e))?;
        // PutEvents answers 200 with the refused entries counted and described in the body.
        if out.failed_entry_count() > 0 {
            let refused = out.entries().iter().find(|e| e.error_code().is_some());
            let code = refused.and_then(|e| e.error_code()).unwrap_or("Unknown");
            let message = refused.and_then(|e| e.error_message()).unwrap_or_default();
            return Err(Error::Backend {
                context: format!("PutEvents to bus {}", self.bus),
                message: format!("{code}: {message}"),
                transient: is_transient(400, code),
                source: None,
            });
        }
        Ok(())
    }
}
