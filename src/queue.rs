//! Queue mode: the webhook enqueues a verified, validated event to SQS and answers 202; the
//! worker consumes it. Events that can't succeed are parked on the dead-letter queue with their
//! reason. No message ever holds a redeem URL.

use serde::{Deserialize, Serialize};

use crate::inbound::CrmEvent;

/// A verified event on its way to the worker.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueuedEvent {
    /// Message format version.
    pub v: u8,
    pub source: String,
    pub event: CrmEvent,
    /// Receives of earlier copies of this message, which the worker deferred for pacing (a
    /// deferral sends a delayed copy, whose own receive count starts again).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub earlier_receives: u32,
    /// The tenant's invitation cell (epoch milliseconds) this copy holds: reserved when the
    /// worker sent it back, used without another write when it comes back in time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell: Option<u64>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// SQS access for both functions.
pub struct Queues {
    /// Built only when a queue is configured: a sync-mode webhook never pays for it.
    client: Option<aws_sdk_sqs::Client>,
    /// Where the webhook sends events (queue mode).
    pub queue_url: Option<String>,
    /// Where the worker parks events that can't succeed.
    pub dead_letter_url: Option<String>,
}

/// The queue could not be written.
#[derive(Debug, Clone, thiserror::Error)]
#[error("SQS {0}")]
pub struct QueueError(pub String);

fn code<E: aws_sdk_sqs::error::ProvideErrorMetadata>(e: &E) -> String {
    e.code().unwrap_or("unreachable").to_owned()
}

impl Queues {
    pub fn new(
        sdk: &aws_config::SdkConfig,
        queue_url: Option<String>,
        dead_letter_url: Option<String>,
    ) -> Self {
        Self {
            client: (queue_url.is_some() || dead_letter_url.is_some())
                .then(|| aws_sdk_sqs::Client::new(sdk)),
            queue_url,
            dead_letter_url,
        }
    }

    fn client(&self) -> Result<&aws_sdk_sqs::Client, QueueError> {
        self.client
            .as_ref()
            .ok_or_else(|| QueueError("no queue configured".into()))
    }

    /// Sends `event` to the processing queue.
    ///
    /// # Errors
    /// [`QueueError`] with the SQS error code.
    pub async fn enqueue(&self, event: &QueuedEvent) -> Result<(), QueueError> {
        let url = self
            .queue_url
            .as_deref()
            .ok_or_else(|| QueueError("queue URL not configured".into()))?;
        let body =
            serde_json::to_string(event).map_err(|_| QueueError("serialisation failed".into()))?;
        self.client()?
            .send_message()
            .queue_url(url)
            .message_body(body)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(format!("SendMessage failed: {}", code(&e))))
    }

    /// Sends each body to the queue again, delivered after its delay (SQS allows up to 15
    /// minutes), ten to a `SendMessageBatch` request; whether each was accepted.
    ///
    /// # Errors
    /// [`QueueError`] when the queue is not configured.
    pub async fn defer(
        &self,
        messages: &[(String, std::time::Duration)],
    ) -> Result<Vec<bool>, QueueError> {
        use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
        let url = self
            .queue_url
            .as_deref()
            .ok_or_else(|| QueueError("queue URL not configured".into()))?;
        let client = self.client()?;
        let mut accepted = vec![false; messages.len()];
        for (chunk, part) in messages.chunks(10).enumerate() {
            let mut entries = Vec::with_capacity(part.len());
            for (i, (body, delay)) in part.iter().enumerate() {
                // Rounded up: a copy never comes back before its turn.
                let secs = delay.as_millis().div_ceil(1000).clamp(1, 900);
                let secs = i32::try_from(secs).unwrap_or(900);
                let entry = SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .delay_seconds(secs)
                    .build()
                    .map_err(|_| QueueError("bad batch entry".into()))?;
                entries.push(entry);
            }
            let sent = client
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send()
                .await;
            match sent {
                Ok(out) => {
                    for ok in out.successful() {
                        if let Ok(i) = ok.id().parse::<usize>() {
                            accepted[chunk * 10 + i] = true;
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %code(&e), "SendMessageBatch (deferred) failed");
                }
            }
        }
        Ok(accepted)
    }

    /// Parks a message on the dead-letter queue with its reason (a problem type and detail,
    /// never personal data) as message attributes, for an operator to inspect and redrive.
    ///
    /// # Errors
    /// [`QueueError`] with the SQS error code.
    pub async fn park(
        &self,
        body: &str,
        reason: &str,
        source: &str,
        event_id: &str,
    ) -> Result<(), QueueError> {
        use aws_sdk_sqs::types::MessageAttributeValue;
        let url = self
            .dead_letter_url
            .as_deref()
            .ok_or_else(|| QueueError("dead-letter queue URL not configured".into()))?;
        let attr = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .map_err(|_| QueueError("bad attribute".into()))
        };
        self.client()?
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_attributes("reason", attr(reason)?)
            .message_attributes("source", attr(source)?)
            .message_attributes("eventId", attr(event_id)?)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError(format!("SendMessage (dead-letter) failed: {}", code(&e))))
    }
}
