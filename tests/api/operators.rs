//! The operator's commands (`doctor`, `dlq`, `status`, `resend`) run as the real binary against
//! the AWS emulator and the Graph emulator, with the functions' own environment.

use serde_json::{Value, json};

use crate::helpers::*;

const GROUP: &str = "5d1e0a52-7c3b-4f6e-9a8d-2b4c6e8f0a1c";
const SENDER_DOMAIN: &str = "doctor.contoso.example";

fn relay_config(from_domain: &str) -> String {
    format!(
        r#"
[invitations]
groups = ["{GROUP}"]

[channels.email]
from = "Contoso Partners <partners@{from_domain}>"

[channels.slack]

[channels.crm-hook]
kind = "webhook"
"#
    )
}

/// Queues with the template's settings: 180 s visibility, 14 days on the dead-letter queue,
/// redrive after `MAX_RECEIVES`.
async fn template_queues(max_receives: u32) -> (String, String) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = aws_sdk_sqs::Client::new(&sdk_config().await);
    let id = uuid_like();
    let dlq = sqs
        .create_queue()
        .queue_name(format!("doctor-dlq-{id}"))
        .attributes(A::MessageRetentionPeriod, "1209600")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dlq)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&A::QueueArn]
        .clone();
    let redrive = json!({"deadLetterTargetArn": arn, "maxReceiveCount": max_receives.to_string()});
    let queue = sqs
        .create_queue()
        .queue_name(format!("doctor-{id}"))
        .attributes(A::VisibilityTimeout, "180")
        .attributes(A::RedrivePolicy, redrive.to_string())
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_owned();
    (queue, dlq)
}

/// A deployment as the template makes it: table, queues, a verified sender, a group.
async fn deployment(from_domain: &str, extra: Vec<(&'static str, String)>) -> TestApp {
    verify_ses_identity(SENDER_DOMAIN).await;
    let table = create_table().await;
    let (queue, dlq) = template_queues(4).await;
    let mut env = vec![
        ("RELAY_CONFIG", relay_config(from_domain)),
        ("IDEMPOTENCY_TABLE", table),
        ("QUEUE_URL", queue),
        ("DEAD_LETTER_QUEUE_URL", dlq),
        ("MAX_RECEIVES", "4".to_owned()),
    ];
    env.extend(extra);
    let t = spawn_app_with(Options {
        env,
        ..Options::default()
    })
    .await;
    t.graph.add_group(GROUP);
    t
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `invite-relay ARGS` with the deployment's environment (the emulators run in this
/// process, so the command runs beside them).
async fn cli(env: &[(&'static str, String)], args: &[&str]) -> Run {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_invite-relay"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", aws_endpoint())
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .args(args)
        .output()
        .await
        .unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

async fn doctor(env: &[(&'static str, String)]) -> (i32, Vec<Value>) {
    let r = cli(env, &["doctor", "--json"]).await;
    let v: Value = serde_json::from_str(r.stdout.trim())
        .unwrap_or_else(|_| panic!("{r:?}", r = (&r.stdout, &r.stderr)));
    assert_eq!(v["ok"], json!(r.code == 0), "exit code follows the result");
    (r.code, v["checks"].as_array().unwrap().clone())
}

fn failed(checks: &[Value]) -> Vec<String> {
    checks
        .iter()
        .filter(|c| c["ok"] == false)
        .map(|c| {
            format!(
                "{} {}: {}",
                c["area"].as_str().unwrap(),
                c["name"].as_str().unwrap(),
                c["detail"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn doctor_passes_on_a_deployment_as_the_template_makes_it() {
    let t = deployment(SENDER_DOMAIN, vec![]).await;
    let (code, checks) = doctor(&t.env).await;
    assert_eq!(failed(&checks), Vec::<String>::new());
    assert_eq!(code, 0);
    let names: Vec<String> = checks
        .iter()
        .map(|c| {
            format!(
                "{} {}",
                c["area"].as_str().unwrap(),
                c["name"].as_str().unwrap()
            )
        })
        .collect();
    for expected in [
        "config configuration",
        "secret Graph credential",
        "secret source generic",
        "secret channel slack",
        "secret channel crm-hook",
        "graph token",
        "permission User.Invite.All for invitations",
        "permission GroupMember.ReadWrite.All for groups",
        &format!("group {GROUP}"),
        "ses channel email: sender identity",
        "queue dead-letter queue",
        "queue invitation queue",
        "delivery channel slack: delivery URL",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "no check {expected:?} in {names:#?}"
        );
    }
    assert!(names.iter().any(|n| n.starts_with("table ")));
    assert!(
        t.graph.invitation_calls().is_empty(),
        "the doctor never invites"
    );
    assert!(
        t.slack.received().is_empty() && t.hook.received().is_empty(),
        "nor posts"
    );

    // The human report: a ✓ per check and the summary.
    let human = cli(&t.env, &["doctor"]).await;
    assert_eq!(human.code, 0, "{}", human.stdout);
    assert!(human.stdout.contains("✓ permission"), "{}", human.stdout);
    assert!(human.stdout.contains("checks passed"), "{}", human.stdout);
    for v in &t.secret_values {
        assert!(
            !human.stdout.contains(v.as_str()),
            "a secret value in the report"
        );
    }
}

#[tokio::test]
async fn doctor_names_each_broken_thing_and_what_to_do() {
    // A missing secret key.
    let mut secret = serde_json::Map::new();
    secret.insert("delivery_signing_secret".into(), Value::Null);
    let t = deployment(SENDER_DOMAIN, vec![]).await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk_config().await);
    let current: Value = serde_json::from_str(
        sm.get_secret_value()
            .secret_id(&t.secret_id)
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap(),
    )
    .unwrap();
    let mut broken = current.clone();
    broken
        .as_object_mut()
        .unwrap()
        .remove("delivery_signing_secret");
    sm.put_secret_value()
        .secret_id(&t.secret_id)
        .secret_string(broken.to_string())
        .send()
        .await
        .unwrap();
    let (code, checks) = doctor(&t.env).await;
    assert_eq!(code, 1);
    let f = failed(&checks);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].starts_with("secret channel crm-hook") && f[0].contains("delivery_signing_secret"),
        "{f:#?}"
    );
    sm.put_secret_value()
        .secret_id(&t.secret_id)
        .secret_string(current.to_string())
        .send()
        .await
        .unwrap();

    // A permission the groups need, missing from the app's consent.
    t.graph.set_roles(&["User.Invite.All", "User.Read.All"]);
    let (code, checks) = doctor(&t.env).await;
    assert_eq!(code, 1);
    let f = failed(&checks);
    assert!(
        f.iter()
            .any(|l| l.starts_with("permission GroupMember.ReadWrite.All for groups")),
        "{f:#?}"
    );
    let fix = checks
        .iter()
        .find(|c| c["area"] == "permission" && c["ok"] == false)
        .unwrap()["fix"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        fix.contains("Grant admin consent") && fix.contains("GroupMember.ReadWrite.All"),
        "{fix}"
    );
    t.graph.set_roles(devkit::DEFAULT_ROLES);

    // A group that doesn't exist.
    let t2 = deployment(SENDER_DOMAIN, vec![]).await;
    let missing = "0f0f0f0f-1111-4222-8333-444455556666";
    let mut env = t2.env.clone();
    for (k, v) in &mut env {
        if *k == "RELAY_CONFIG" {
            *v = v.replace(GROUP, missing);
        }
    }
    let (code, checks) = doctor(&env).await;
    assert_eq!(code, 1);
    assert_eq!(
        failed(&checks),
        vec![format!("group {missing}: no such group in the tenant")]
    );

    // A sender whose identity SES hasn't verified.
    let t3 = deployment("unverified.contoso.example", vec![]).await;
    let (code, checks) = doctor(&t3.env).await;
    assert_eq!(code, 1);
    let f = failed(&checks);
    assert_eq!(f.len(), 1, "{f:#?}");
    assert!(
        f[0].starts_with("ses channel email: sender identity"),
        "{f:#?}"
    );
}

#[tokio::test]
async fn doctor_says_what_a_missing_setting_is() {
    let r = cli(&[("GRAPH_TENANT_ID", "x".to_owned())], &["doctor"]).await;
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("✗ config"), "{}", r.stdout);
    assert!(r.stdout.contains("→"), "what to do: {}", r.stdout);
}
