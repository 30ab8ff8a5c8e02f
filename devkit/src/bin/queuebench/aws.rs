//! The AWS calls the harness makes itself, in the services' JSON protocols (the AWS emulator
//! checks no signatures; it reads the region from the credential scope): the run's queues,
//! table and secret, the poller's SQS calls, and the table scan at the end.

use serde_json::{Value, json};

pub const REGION: &str = "eu-west-1";

/// A JSON-protocol client for one endpoint (the AWS emulator, or the proxy in front of it).
#[derive(Clone)]
pub struct Aws {
    http: reqwest::Client,
    endpoint: String,
}

impl Aws {
    pub fn new(endpoint: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .no_proxy()
                .build()
                .expect("HTTP client"),
            endpoint: endpoint.trim_end_matches('/').to_owned(),
        }
    }

    /// One call: `service` names the credential scope (`sqs`, `dynamodb`, `secretsmanager`),
    /// `target` the operation (`AmazonSQS.ReceiveMessage`, …).
    pub async fn call(&self, service: &str, target: &str, body: Value) -> Result<Value, String> {
        let content_type = if service == "secretsmanager" {
            "application/x-amz-json-1.1"
        } else {
            "application/x-amz-json-1.0"
        };
        let response = self
            .http
            .post(format!("{}/", self.endpoint))
            .header("x-amz-target", target)
            .header("content-type", content_type)
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=bench/20260101/{REGION}/{service}/aws4_request, SignedHeaders=host, Signature=0"
                ),
            )
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| format!("{target}: {e}"))?;
        let status = response.status();
        let text = response.text().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("{target}: {status} {text}"));
        }
        if text.trim().is_empty() {
            return Ok(json!({}));
        }
        serde_json::from_str(&text).map_err(|e| format!("{target}: {e}: {text}"))
    }

    pub async fn sqs(&self, op: &str, body: Value) -> Result<Value, String> {
        self.call("sqs", &format!("AmazonSQS.{op}"), body).await
    }

    pub async fn dynamodb(&self, op: &str, body: Value) -> Result<Value, String> {
        self.call("dynamodb", &format!("DynamoDB_20120810.{op}"), body)
            .await
    }
}

/// What the run created in the AWS emulator.
pub struct Resources {
    pub queue_url: String,
    pub queue_arn: String,
    pub dead_letter_url: String,
    pub table: String,
    pub secret_id: String,
}

/// The queue and its dead-letter queue as `template.yaml` declares them (visibility,
/// retention, redrive after `max_receives`), the table with its `tracking-index`, the secret.
pub async fn create(
    aws: &Aws,
    run: &str,
    visibility: u32,
    max_receives: u32,
    secret: &Value,
) -> Result<Resources, String> {
    let dlq = aws
        .sqs(
            "CreateQueue",
            json!({"QueueName": format!("qb-dlq-{run}"), "Attributes": {"MessageRetentionPeriod": "1209600"}}),
        )
        .await?;
    let dead_letter_url = dlq["QueueUrl"].as_str().ok_or("no QueueUrl")?.to_owned();
    let dlq_arn = queue_arn(aws, &dead_letter_url).await?;
    let redrive =
        json!({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": max_receives.to_string()});
    let q = aws
        .sqs(
            "CreateQueue",
            json!({"QueueName": format!("qb-{run}"), "Attributes": {
                "VisibilityTimeout": visibility.to_string(),
                "MessageRetentionPeriod": "345600",
                "RedrivePolicy": redrive.to_string(),
            }}),
        )
        .await?;
    let queue_url = q["QueueUrl"].as_str().ok_or("no QueueUrl")?.to_owned();
    let queue_arn = queue_arn(aws, &queue_url).await?;
    let table = format!("qb-{run}");
    create_table(aws, &table).await?;
    let secret_id = format!("qb-{run}");
    aws.call(
        "secretsmanager",
        "secretsmanager.CreateSecret",
        json!({"Name": secret_id, "SecretString": secret.to_string()}),
    )
    .await?;
    Ok(Resources {
        queue_url,
        queue_arn,
        dead_letter_url,
        table,
        secret_id,
    })
}

async fn queue_arn(aws: &Aws, url: &str) -> Result<String, String> {
    let a = aws
        .sqs(
            "GetQueueAttributes",
            json!({"QueueUrl": url, "AttributeNames": ["QueueArn"]}),
        )
        .await?;
    a["Attributes"]["QueueArn"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("no QueueArn: {a}"))
}

async fn create_table(aws: &Aws, table: &str) -> Result<(), String> {
    aws.dynamodb(
        "CreateTable",
        json!({
            "TableName": table,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [
                {"AttributeName": "id", "AttributeType": "S"},
                {"AttributeName": "tracking", "AttributeType": "S"},
                {"AttributeName": "tracking_at", "AttributeType": "N"},
            ],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            "GlobalSecondaryIndexes": [{
                "IndexName": "tracking-index",
                "KeySchema": [
                    {"AttributeName": "tracking", "KeyType": "HASH"},
                    {"AttributeName": "tracking_at", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }],
        }),
    )
    .await
    .map(|_| ())
}

/// The table's items (every page).
pub async fn scan(aws: &Aws, table: &str) -> Result<Vec<Value>, String> {
    let mut items = Vec::new();
    let mut start: Option<Value> = None;
    loop {
        let mut body = json!({"TableName": table});
        if let Some(k) = start.take() {
            body["ExclusiveStartKey"] = k;
        }
        let page = aws.dynamodb("Scan", body).await?;
        items.extend(page["Items"].as_array().cloned().unwrap_or_default());
        match page.get("LastEvaluatedKey") {
            Some(k) if !k.is_null() => start = Some(k.clone()),
            _ => return Ok(items),
        }
    }
}

/// An item's size as DynamoDB counts it (approximately): attribute names plus values.
pub fn item_size(item: &Value) -> usize {
    item.as_object()
        .map_or(0, |m| m.iter().map(|(k, v)| k.len() + value_size(v)).sum())
}

fn value_size(v: &Value) -> usize {
    let Some((kind, inner)) = v.as_object().and_then(|m| m.iter().next()) else {
        return 0;
    };
    match (kind.as_str(), inner) {
        ("S", Value::String(s)) => s.len(),
        ("N", Value::String(n)) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        ("B", Value::String(b)) => b.len() * 3 / 4,
        ("BOOL" | "NULL", _) => 1,
        ("SS" | "NS" | "BS", Value::Array(a)) => {
            a.iter().map(|x| x.as_str().map_or(0, str::len)).sum()
        }
        ("L", Value::Array(a)) => 3 + a.iter().map(|x| 1 + value_size(x)).sum::<usize>(),
        ("M", Value::Object(m)) => {
            3 + m
                .iter()
                .map(|(k, x)| 1 + k.len() + value_size(x))
                .sum::<usize>()
        }
        _ => 0,
    }
}
