//! A stand-in for Lambda's SQS event source mapping, one per worker instance: long-poll the
//! queue, hand the batch to the function as Lambda shapes it, delete what the function did not
//! report in `batchItemFailures` (`ReportBatchItemFailures`). A message not deleted becomes
//! visible again when its visibility timeout runs out, as on the real service.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devkit::runtime_api::{Invoked, LambdaProcess};
use serde_json::{Value, json};

use crate::aws::{Aws, REGION};

/// The mapping's settings (batch size and timeout as the template sets them).
#[derive(Clone)]
pub struct Mapping {
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: u32,
    /// Long-poll wait of each `ReceiveMessage` (Lambda's pollers use 20 s).
    pub wait_seconds: u32,
    /// The function's timeout (the template's: 30 s).
    pub function_timeout: Duration,
}

/// What one poller saw.
#[derive(Debug, Default, Clone)]
pub struct PollerStats {
    pub batches: usize,
    pub messages: usize,
    pub returned: usize,
    pub failed_invocations: usize,
    pub refused_deletes: usize,
    pub errors: Vec<String>,
}

impl PollerStats {
    pub fn add(&mut self, o: &PollerStats) {
        self.batches += o.batches;
        self.messages += o.messages;
        self.returned += o.returned;
        self.failed_invocations += o.failed_invocations;
        self.refused_deletes += o.refused_deletes;
        self.errors.extend(o.errors.iter().cloned());
    }
}

/// Polls until `stop`; `busy` is set while a batch is in the function's hands or being
/// deleted (so the harness can wait for the last one to settle).
pub async fn run(
    aws: Aws,
    function: Arc<LambdaProcess>,
    mapping: Mapping,
    stop: Arc<AtomicBool>,
    busy: Arc<AtomicBool>,
    stats: Arc<Mutex<PollerStats>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let received = aws
            .sqs(
                "ReceiveMessage",
                json!({
                    "QueueUrl": mapping.queue_url,
                    "MaxNumberOfMessages": mapping.batch_size,
                    "WaitTimeSeconds": mapping.wait_seconds,
                    "AttributeNames": ["All"],
                    "MessageSystemAttributeNames": ["All"],
                    "MessageAttributeNames": ["All"],
                }),
            )
            .await;
        let messages = match received {
            Ok(r) => r["Messages"].as_array().cloned().unwrap_or_default(),
            Err(e) => {
                stats.lock().unwrap().errors.push(e);
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if messages.is_empty() {
            continue;
        }
        busy.store(true, Ordering::Relaxed);
        let mut batch = PollerStats::default();
        handle_batch(&aws, &function, &mapping, &messages, &mut batch).await;
        stats.lock().unwrap().add(&batch);
        busy.store(false, Ordering::Relaxed);
    }
}

async fn handle_batch(
    aws: &Aws,
    function: &LambdaProcess,
    mapping: &Mapping,
    messages: &[Value],
    stats: &mut PollerStats,
) {
    stats.batches += 1;
    stats.messages += messages.len();
    let event = json!({"Records": messages
        .iter()
        .map(|m| record(m, &mapping.queue_arn))
        .collect::<Vec<_>>()});
    // A little past the function's timeout: the Runtime API's own deadline is the function's.
    let answer = function
        .invoke(
            &event.to_string(),
            mapping.function_timeout + Duration::from_secs(5),
        )
        .await;
    let failed: Vec<String> = match answer {
        Ok(Invoked::Response(v)) => v["batchItemFailures"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|f| f["itemIdentifier"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default(),
        Ok(Invoked::Error(e)) | Err(e) => {
            stats.failed_invocations += 1;
            stats.errors.push(format!("invocation failed: {e}"));
            return;
        }
    };
    stats.returned += failed.len();
    let entries: Vec<Value> = messages
        .iter()
        .enumerate()
        .filter(|(_, m)| !failed.iter().any(|f| m["MessageId"].as_str() == Some(f)))
        .map(|(i, m)| json!({"Id": i.to_string(), "ReceiptHandle": m["ReceiptHandle"]}))
        .collect();
    if entries.is_empty() {
        return;
    }
    match aws
        .sqs(
            "DeleteMessageBatch",
            json!({"QueueUrl": mapping.queue_url, "Entries": entries}),
        )
        .await
    {
        Ok(r) => stats.refused_deletes += r["Failed"].as_array().map_or(0, Vec::len),
        Err(e) => stats.errors.push(e),
    }
}

/// One message as Lambda puts it in the event's `Records`.
fn record(m: &Value, queue_arn: &str) -> Value {
    let attrs = &m["Attributes"];
    let mut attributes = serde_json::Map::new();
    for k in [
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
        "AWSTraceHeader",
    ] {
        if let Some(v) = attrs.get(k) {
            attributes.insert(k.to_owned(), v.clone());
        }
    }
    json!({
        "messageId": m["MessageId"],
        "receiptHandle": m["ReceiptHandle"],
        "body": m["Body"],
        "attributes": attributes,
        "messageAttributes": message_attributes(&m["MessageAttributes"]),
        "md5OfBody": m["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    })
}

/// SQS's `{"Name": {"DataType", "StringValue"}}` as Lambda's `{"name": {"dataType",
/// "stringValue", "stringListValues", "binaryListValues"}}`.
fn message_attributes(attrs: &Value) -> Value {
    let Some(map) = attrs.as_object() else {
        return json!({});
    };
    let out: serde_json::Map<String, Value> = map
        .iter()
        .map(|(name, a)| {
            let mut v = json!({
                "dataType": a["DataType"],
                "stringListValues": [],
                "binaryListValues": [],
            });
            if let Some(s) = a.get("StringValue") {
                v["stringValue"] = s.clone();
            }
            if let Some(b) = a.get("BinaryValue") {
                v["binaryValue"] = b.clone();
            }
            (name.clone(), v)
        })
        .collect();
    Value::Object(out)
}
