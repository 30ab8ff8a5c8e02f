//! What the AWS requests of a run cost in the units AWS bills: SQS requests per 64 KB, and
//! DynamoDB on-demand read and write request units, from the proxy's record of each request.

use std::collections::BTreeMap;

use devkit::ProxiedRequest;

/// SQS requests by operation, and billed requests (each 64 KB of payload counts as one).
#[derive(Debug, Default, Clone)]
pub struct SqsAccount {
    pub by_operation: BTreeMap<String, usize>,
    pub empty_receives: usize,
    pub requests: usize,
    pub billed: usize,
}

/// DynamoDB requests and units by operation.
#[derive(Debug, Default, Clone)]
pub struct DynamoAccount {
    pub by_operation: BTreeMap<String, usize>,
    pub wru: f64,
    pub rru: f64,
    /// Conditional writes refused (`ConditionalCheckFailedException`): billed all the same.
    pub failed_conditions: usize,
    /// Writes that set or remove the `tracking` attribute, so also write the sparse
    /// `tracking-index` (one more WRU each, included in `wru`): an estimate from the requests.
    pub index_writes: usize,
}

const KB64: usize = 64 * 1024;

pub fn sqs(requests: &[ProxiedRequest]) -> SqsAccount {
    let mut a = SqsAccount::default();
    for r in requests {
        let Some(op) = r.operation.strip_prefix("AmazonSQS.") else {
            continue;
        };
        *a.by_operation.entry(op.to_owned()).or_default() += 1;
        a.requests += 1;
        // The payload: what is sent for a send, what comes back for a receive.
        let payload = r.request_bytes.max(r.response_bytes);
        a.billed += payload.div_ceil(KB64).max(1);
        if op == "ReceiveMessage" && r.status == 200 && r.response_bytes < 40 {
            // `{}` or `{"Messages":[]}`: nothing received.
            a.empty_receives += 1;
        }
    }
    a
}

pub fn dynamodb(requests: &[ProxiedRequest]) -> DynamoAccount {
    let mut a = DynamoAccount::default();
    for r in requests {
        let Some(op) = r.operation.strip_prefix("DynamoDB_20120810.") else {
            continue;
        };
        *a.by_operation.entry(op.to_owned()).or_default() += 1;
        let read = if r.consistent_read { 1.0 } else { 0.5 };
        let body: serde_json::Value = serde_json::from_str(&r.dynamodb_body).unwrap_or_default();
        match op {
            "PutItem" | "UpdateItem" | "DeleteItem" => {
                a.wru += 1.0;
                if r.error_type.contains("ConditionalCheckFailed") {
                    a.failed_conditions += 1;
                }
                if writes_tracking(&body) {
                    a.index_writes += 1;
                    a.wru += 1.0;
                }
            }
            "BatchWriteItem" => a.wru += count_items(&body["RequestItems"]) as f64,
            "TransactWriteItems" => {
                a.wru += 2.0 * body["TransactItems"].as_array().map_or(0, Vec::len) as f64;
            }
            "GetItem" => a.rru += read,
            "BatchGetItem" => a.rru += read * count_keys(&body["RequestItems"]) as f64,
            "Query" | "Scan" => {
                a.rru += read * r.response_bytes.div_ceil(4096).max(1) as f64;
            }
            _ => {}
        }
    }
    a
}

/// A write naming the index's key attribute (in the item, or in the update's names).
fn writes_tracking(body: &serde_json::Value) -> bool {
    body["Item"].get("tracking").is_some()
        || body["ExpressionAttributeNames"]
            .as_object()
            .is_some_and(|m| m.values().any(|v| v == "tracking"))
        || body["UpdateExpression"].as_str().is_some_and(|e| {
            e.split(|c: char| !c.is_alphanumeric() && c != '_')
                .any(|w| w == "tracking")
        })
}

fn count_items(per_table: &serde_json::Value) -> usize {
    per_table.as_object().map_or(0, |m| {
        m.values().filter_map(|v| v.as_array()).map(Vec::len).sum()
    })
}

fn count_keys(per_table: &serde_json::Value) -> usize {
    per_table.as_object().map_or(0, |m| {
        m.values()
            .filter_map(|v| v["Keys"].as_array())
            .map(Vec::len)
            .sum()
    })
}

/// Who made a request: `webhook` or `worker` (the functions name themselves in the AWS SDK's
/// user agent through `AWS_SDK_UA_APP_ID`), else `mapping` (the harness's pollers).
pub fn caller(r: &ProxiedRequest) -> &'static str {
    if r.user_agent.contains("app/webhook") {
        "webhook"
    } else if r.user_agent.contains("app/worker") {
        "worker"
    } else {
        "mapping"
    }
}

/// Per caller: requests by operation (service prefix dropped), and the AWS emulator's own
/// answer time summed (what the emulator adds to the functions' durations beyond the profile).
#[derive(Debug, Default, Clone)]
pub struct CallerAccount {
    pub by_operation: BTreeMap<String, usize>,
    pub emulator_time: std::time::Duration,
}

pub fn by_caller(requests: &[ProxiedRequest]) -> BTreeMap<&'static str, CallerAccount> {
    let mut out: BTreeMap<&'static str, CallerAccount> = BTreeMap::new();
    for r in requests {
        let a = out.entry(caller(r)).or_default();
        let op = r.operation.rsplit('.').next().unwrap_or("");
        *a.by_operation.entry(op.to_owned()).or_default() += 1;
        a.emulator_time += r.upstream;
    }
    out
}
