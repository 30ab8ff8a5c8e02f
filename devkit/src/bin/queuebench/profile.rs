//! Latency profiles: what the emulators add to each call, so the functions' billed time under
//! realistic upstream latency can be measured on loopback.

use std::time::Duration;

use devkit::{GraphLatency, Latency};

/// Added latency per upstream.
#[derive(Debug, Clone)]
pub struct Profile {
    pub name: String,
    pub graph: GraphLatency,
    /// Each request to the channel (the devkit receiver standing in for a webhook, Slack or
    /// Teams endpoint).
    pub channel: Latency,
    /// SES (not on the path of the default channel set; stated for completeness).
    pub ses: Latency,
    /// Each DynamoDB and SQS request (the proxy in front of the AWS emulator).
    pub aws: Latency,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

impl Profile {
    pub fn named(name: &str) -> Result<Self, String> {
        match name {
            "loopback" => Ok(Self::loopback()),
            "realistic" => Ok(Self::realistic()),
            other => Err(format!("unknown profile {other:?}: realistic or loopback")),
        }
    }

    /// No added latency: the emulators answer as fast as loopback allows.
    pub fn loopback() -> Self {
        Self {
            name: "loopback".into(),
            graph: GraphLatency::default(),
            channel: Latency::ZERO,
            ses: Latency::ZERO,
            aws: Latency::ZERO,
        }
    }

    /// Assumptions (typical from a Lambda function in a European or US region): the token
    /// endpoint ~150 ms; `POST /invitations` 400 ms for 90 % of calls and 800–1200 ms for
    /// 10 % (Graph's invitation manager is slow and has a long tail); other Graph calls
    /// 150 ms; a Slack, Teams or webhook channel 150 ms; SES 80 ms; DynamoDB and SQS 10 ms.
    pub fn realistic() -> Self {
        Self {
            name: "realistic".into(),
            graph: GraphLatency {
                token: Latency::fixed(ms(150)),
                invitation: Latency::with_tail(ms(400), 0.10, ms(800), ms(1200)),
                other: Latency::fixed(ms(150)),
            },
            channel: Latency::fixed(ms(150)),
            ses: Latency::fixed(ms(80)),
            aws: Latency::fixed(ms(10)),
        }
    }

    /// One line stating the assumptions.
    pub fn describe(&self) -> String {
        let i = self.graph.invitation;
        format!(
            "profile {}: token {} ms, invitation {} ms ({:.0} % of calls {}-{} ms), other Graph {} ms, channel {} ms, SES {} ms, DynamoDB/SQS {} ms per request",
            self.name,
            self.graph.token.base.as_millis(),
            i.base.as_millis(),
            i.tail_share * 100.0,
            i.tail_min.as_millis(),
            i.tail_max.as_millis(),
            self.graph.other.base.as_millis(),
            self.channel.base.as_millis(),
            self.ses.base.as_millis(),
            self.aws.base.as_millis(),
        )
    }

    pub fn to_json(&self) -> serde_json::Value {
        let l = |l: &Latency| {
            serde_json::json!({
                "base_ms": l.base.as_millis() as u64,
                "tail_share": l.tail_share,
                "tail_min_ms": l.tail_min.as_millis() as u64,
                "tail_max_ms": l.tail_max.as_millis() as u64,
            })
        };
        serde_json::json!({
            "name": self.name,
            "token": l(&self.graph.token),
            "invitation": l(&self.graph.invitation),
            "other_graph": l(&self.graph.other),
            "channel": l(&self.channel),
            "ses": l(&self.ses),
            "dynamodb_sqs": l(&self.aws),
        })
    }
}
