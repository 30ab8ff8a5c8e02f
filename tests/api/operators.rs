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
    create_queues_with(max_receives, 180, Some(1_209_600)).await
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
    let aws = [
        ("AWS_ENDPOINT_URL", aws_endpoint()),
        ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
        ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
    ];
    cli_as(&aws, env, args).await
}

/// [`cli`] with these AWS settings (endpoint and credentials).
async fn cli_as(
    aws: &[(&'static str, String)],
    env: &[(&'static str, String)],
    args: &[&str],
) -> Run {
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_invite-relay"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_REGION", "eu-west-1")
        .envs(aws.iter().map(|(k, v)| (*k, v.as_str())))
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

/// A queue-mode deployment whose worker parks one event Graph refused for good and one that
/// outlived its receives.
async fn with_parked_events() -> (TestApp, String, String) {
    let t = deployment(SENDER_DOMAIN, vec![("PROCESSING_MODE", "queue".to_owned())]).await;
    let env = |k: &str| t.env.iter().find(|(ek, _)| *ek == k).unwrap().1.clone();
    let (queue, dlq) = (env("QUEUE_URL"), env("DEAD_LETTER_QUEUE_URL"));
    for (id, email) in [
        ("evt_refused", "ada@partner.example"),
        ("evt_throttled", "grace@partner.example"),
    ] {
        let mut b = sample_body();
        b["id"] = id.into();
        b["invitee"]["email"] = email.into();
        b.as_object_mut().unwrap().remove("delivery");
        assert_eq!(t.post(&b).await.status, 202);
    }
    t.graph.fail_next_invitation(devkit::Fault::Status {
        status: 400,
        code: "BadRequest",
        retry_after: None,
    });
    t.graph.fail_next_invitation(devkit::Fault::Status {
        status: 429,
        code: "TooManyRequests",
        retry_after: Some(30.0),
    });
    let worker = build_app(&t.env).await.unwrap();
    let (mut event, handles) = receive_batch(&queue, 10).await;
    assert_eq!(handles.len(), 2);
    // On their last receive: the worker parks what fails, with its reason.
    for r in event["Records"].as_array_mut().unwrap() {
        r["attributes"]["ApproximateReceiveCount"] = "4".into();
    }
    let response = invite_relay::worker::handle(
        &worker,
        event,
        invite_relay::resilience::Deadline::after(std::time::Duration::from_secs(5)),
    )
    .await
    .unwrap();
    delete_succeeded(&queue, &handles, &response).await;
    (t, queue, dlq)
}

#[tokio::test]
async fn dead_letters_are_listed_redriven_through_the_queue_and_dropped() {
    let (t, queue, _dlq) = with_parked_events().await;
    let listed = cli(&t.env, &["dlq", "list", "--json"]).await;
    assert_eq!(listed.code, 0, "{}", listed.stderr);
    let rows: Vec<Value> = listed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // Which event met which fault depends on the batch's order.
    let key_of = |kind: &str| {
        rows.iter()
            .find(|r| r["kind"] == kind)
            .map(|r| r["key"].as_str().unwrap().to_owned())
    };
    let refused = key_of("graph-rejected").expect("the refused event is parked");
    let throttled = key_of("upstream-unavailable").expect("the throttled event is parked");
    let mut keys = vec![refused.clone(), throttled.clone()];
    keys.sort();
    assert_eq!(keys, vec!["generic/evt_refused", "generic/evt_throttled"]);
    assert!(
        !listed.stdout.contains('@'),
        "no address without --show-emails"
    );
    let shown = cli(&t.env, &["dlq", "list", "--show-emails"]).await;
    assert!(
        shown.stdout.contains("ada@partner.example") && shown.stdout.contains("2 parked"),
        "{}",
        shown.stdout
    );

    // A reason nobody parks with is a clear error; nothing moves.
    let typo = cli(&t.env, &["dlq", "redrive", "--reason", "graph-rejeted"]).await;
    assert_eq!(typo.code, 1);
    assert!(
        typo.stderr.contains("unknown --reason") && typo.stderr.contains("graph-rejected"),
        "{}",
        typo.stderr
    );

    // Redrive only the throttled one, through the queue; the worker then invites it.
    let redriven = cli(
        &t.env,
        &[
            "dlq",
            "redrive",
            "--reason",
            "upstream-unavailable",
            "--json",
        ],
    )
    .await;
    assert_eq!(redriven.code, 0, "{}", redriven.stderr);
    let summary: Value = serde_json::from_str(redriven.stdout.trim()).unwrap();
    assert_eq!(
        (summary["redriven"].clone(), summary["left"].clone()),
        (json!(1), json!(1))
    );
    let worker = build_app(&t.env).await.unwrap();
    let (event, handles) = receive_batch(&queue, 10).await;
    assert_eq!(handles.len(), 1);
    let throttled_id = throttled.strip_prefix("generic/").unwrap();
    assert!(
        event["Records"][0]["body"]
            .as_str()
            .unwrap()
            .contains(throttled_id)
    );
    let response = invite_relay::worker::handle(
        &worker,
        event,
        invite_relay::resilience::Deadline::after(std::time::Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(response, json!({"batchItemFailures": []}));
    assert_eq!(t.graph.created().len(), 1, "the redriven event invited");

    // A key that isn't there is an error; the refused one is dropped.
    let none = cli(&t.env, &["dlq", "drop", "generic/evt_nope"]).await;
    assert_eq!(none.code, 1);
    let dropped = cli(&t.env, &["dlq", "drop", &refused]).await;
    assert_eq!(dropped.code, 0, "{}", dropped.stderr);
    let after = cli(&t.env, &["dlq", "list", "--json"]).await;
    assert_eq!(after.stdout.trim(), "", "the dead-letter queue is empty");
}

#[tokio::test]
async fn status_answers_a_support_question_and_resend_sends_a_fresh_link() {
    let t = deployment(SENDER_DOMAIN, vec![]).await;
    let mut b = sample_body();
    b["id"] = "evt_status".into();
    b.as_object_mut().unwrap().remove("delivery");
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);

    let by_event = cli(&t.env, &["status", "generic/evt_status", "--json"]).await;
    assert_eq!(by_event.code, 0, "{}", by_event.stderr);
    let r: Value = serde_json::from_str(by_event.stdout.trim()).unwrap();
    assert_eq!(r["event"]["record"], "completed");
    assert!(r["event"]["invitationId"].is_string());
    let mut delivered: Vec<&str> = r["event"]["delivered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    delivered.sort();
    assert_eq!(delivered, vec!["crm-hook", "email", "slack"]);
    assert_eq!(r["relay"]["state"], "pending");
    assert_eq!(r["relay"]["groups"], json!([GROUP]));
    assert_eq!(r["guest"]["externalUserState"], "PendingAcceptance");
    assert_eq!(r["guest"]["groups"][0]["id"], GROUP);
    assert!(
        !by_event.stdout.contains('@'),
        "no address without --show-emails"
    );

    let by_mail = cli(&t.env, &["status", SAMPLE_EMAIL]).await;
    assert_eq!(by_mail.code, 0, "{}", by_mail.stderr);
    assert!(
        by_mail.stdout.contains("generic/evt_status (completed)"),
        "{}",
        by_mail.stdout
    );
    assert!(
        by_mail.stdout.contains("PendingAcceptance"),
        "{}",
        by_mail.stdout
    );

    // A fresh link through the same channels; nothing about the link in the answer.
    let (slack, hook) = (t.slack.delivered().len(), t.hook.delivered().len());
    let resent = cli(&t.env, &["resend", "generic/evt_status"]).await;
    assert_eq!(resent.code, 0, "{}", resent.stderr);
    assert_eq!(t.graph.created().len(), 2);
    assert_eq!(
        (t.slack.delivered().len(), t.hook.delivered().len()),
        (slack + 1, hook + 1)
    );
    assert!(
        !resent.stdout.contains("redeem") && !resent.stdout.contains('@'),
        "{}",
        resent.stdout
    );

    // Once accepted there is nothing to resend; the status shows the change.
    t.graph.accept(SAMPLE_EMAIL);
    let refused = cli(&t.env, &["resend", "generic/evt_status"]).await;
    assert_eq!(refused.code, 1);
    assert!(
        refused.stderr.contains("already accepted"),
        "{}",
        refused.stderr
    );
    assert_eq!(t.graph.created().len(), 2);
    let now = cli(&t.env, &["status", "generic/evt_status", "--json"]).await;
    let r: Value = serde_json::from_str(now.stdout.trim()).unwrap();
    assert_eq!(r["guest"]["externalUserState"], "Accepted");

    let unknown = cli(&t.env, &["status", "generic/evt_never"]).await;
    assert_eq!(unknown.code, 1);
    assert!(
        unknown.stderr.contains("no record of this event"),
        "{}",
        unknown.stderr
    );
}

/// An AWS emulator of its own that enforces IAM after its first three (setup) calls, stopped
/// when dropped.
struct StrictAws {
    url: String,
    child: std::process::Child,
}

impl Drop for StrictAws {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn strict_aws() -> StrictAws {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = std::process::Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .env("INITIAL_NO_AUTH_ACTION_COUNT", "3")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("moto_server on PATH");
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    StrictAws { url, child }
}

/// Sets up the strict emulator with boto3 (its first three calls make an administrator):
/// an operator allowed only `actions`, a dead-letter queue and a secret. Returns the operator's
/// key id and secret key, and the queue's URL.
fn strict_setup(url: &str, secret_id: &str, actions: &[&str]) -> (String, String, String) {
    const SETUP: &str = r#"
import boto3, json, sys
url, secret_id, actions = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
kw = dict(endpoint_url=url, region_name="eu-west-1")
iam = boto3.client("iam", aws_access_key_id="setup", aws_secret_access_key="setup", **kw)
iam.create_user(UserName="admin")
k = iam.create_access_key(UserName="admin")["AccessKey"]
allow = lambda a: json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": a, "Resource": "*"}]})
iam.put_user_policy(UserName="admin", PolicyName="all", PolicyDocument=allow("*"))
admin = dict(aws_access_key_id=k["AccessKeyId"], aws_secret_access_key=k["SecretAccessKey"], **kw)
iam = boto3.client("iam", **admin)
iam.create_user(UserName="operator")
o = iam.create_access_key(UserName="operator")["AccessKey"]
iam.put_user_policy(UserName="operator", PolicyName="some", PolicyDocument=allow(actions))
dlq = boto3.client("sqs", **admin).create_queue(QueueName="strict-dlq")["QueueUrl"]
boto3.client("secretsmanager", **admin).create_secret(Name=secret_id, SecretString="{}")
print(json.dumps([o["AccessKeyId"], o["SecretAccessKey"], dlq]))
"#;
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            SETUP,
            url,
            secret_id,
            &serde_json::to_string(actions).unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_missing_aws_permission_is_named_with_its_action_and_resource() {
    let t = deployment(SENDER_DOMAIN, vec![]).await;
    let strict = strict_aws().await;
    let (key, secret, dlq) = strict_setup(&strict.url, &t.secret_id, &["sqs:GetQueueAttributes"]);
    let aws = [
        ("AWS_ENDPOINT_URL", strict.url.clone()),
        ("AWS_ACCESS_KEY_ID", key),
        ("AWS_SECRET_ACCESS_KEY", secret),
    ];
    let mut env: Vec<(&'static str, String)> = t
        .env
        .iter()
        .filter(|(k, _)| {
            !matches!(
                *k,
                "IDEMPOTENCY_TABLE" | "QUEUE_URL" | "DEAD_LETTER_QUEUE_URL"
            )
        })
        .cloned()
        .collect();
    env.push(("DEAD_LETTER_QUEUE_URL", dlq.clone()));

    let listed = cli_as(&aws, &env, &["dlq", "list"]).await;
    assert_eq!(listed.code, 1);
    assert!(
        listed.stderr.contains(&format!(
            "permission missing: allow sqs:ReceiveMessage on {dlq}"
        )),
        "{}",
        listed.stderr
    );
    let doctor = cli_as(&aws, &env, &["doctor", "--json"]).await;
    assert_eq!(doctor.code, 1);
    let v: Value = serde_json::from_str(doctor.stdout.trim()).unwrap();
    let read = v["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["area"] == "secret")
        .unwrap();
    assert_eq!(read["ok"], false);
    assert!(
        read["detail"].as_str().unwrap().contains(&format!(
            "permission missing: allow secretsmanager:GetSecretValue on {}",
            t.secret_id
        )),
        "{read}"
    );
}
