//! `invite-relay bulk FILE.csv`: the real command, run beside the Graph emulator and the AWS
//! emulator, against real files — a 200-row file run twice, Entra's template, a file without a
//! header, a dry run, queue mode.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::*;

/// What the command printed and how it ended.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|_| panic!("stdout is not JSON: {}\n{}", self.stdout, self.stderr))
    }
}

/// Runs `invite-relay bulk ARGS` with the functions' environment, as an operator would.
async fn bulk(t: &TestApp, args: &[&str]) -> Run {
    bulk_with(t, &[], args).await
}

/// [`bulk`] with more environment (endpoints).
async fn bulk_with(t: &TestApp, env: &[(&str, &str)], args: &[&str]) -> Run {
    // The emulators run in this process: the command runs beside them, not blocking them.
    let o = tokio::process::Command::new(env!("CARGO_BIN_EXE_invite-relay"))
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("AWS_ENDPOINT_URL", aws_endpoint())
        .env("AWS_REGION", "eu-west-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .envs(t.env.iter().map(|(k, v)| (*k, v.as_str())))
        .envs(env.iter().copied())
        .arg("bulk")
        .args(args)
        .output()
        .await
        .unwrap();
    Run {
        code: o.status.code(),
        stdout: String::from_utf8(o.stdout).unwrap(),
        stderr: String::from_utf8(o.stderr).unwrap(),
    }
}

/// A fresh directory for one test's files.
fn workdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("invite-relay-bulk-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

/// The result file's records, by column name.
fn result_rows(path: &Path) -> Vec<HashMap<String, String>> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    let headers = reader.headers().unwrap().clone();
    assert_eq!(
        headers.iter().collect::<Vec<_>>(),
        [
            "row",
            "eventId",
            "email",
            "status",
            "invitationId",
            "channels",
            "reason"
        ]
    );
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

/// The app whose environment the command uses: a durable table and, so that 200 rows take
/// seconds, an invitation rate far above the deployed default of 30 a minute.
async fn bulk_app(extra: Vec<(&'static str, String)>) -> (TestApp, String) {
    let table = create_table().await;
    let mut env = vec![
        ("IDEMPOTENCY_TABLE", table.clone()),
        ("INVITE_RATE_PER_MINUTE", "6000".into()),
    ];
    env.extend(extra);
    let t = spawn_app_with(Options {
        env,
        ..Options::default()
    })
    .await;
    (t, table)
}

/// What a generated row should come to.
#[derive(Debug, Clone)]
enum Expect {
    Invited,
    Failed(&'static str),
    SameAs(usize),
}

/// 200 rows, with the line each starts on: good rows, rows without an address, malformed
/// addresses, a row with a surplus field, a copy of an earlier row, and a quoted cell spanning
/// two lines (so line numbers and row numbers part).
fn two_hundred_rows() -> (String, Vec<(u64, Expect)>) {
    let mut text = String::from("email,displayName,company,language,region,note\n");
    let mut line = 2;
    let mut expected = Vec::new();
    let mut lines_of = Vec::new();
    for i in 0..200 {
        let (row, expect) = match i {
            _ if i % 20 == 3 => (
                format!(",Nobody {i},Co {i},en,emea,"),
                Expect::Failed("no email"),
            ),
            _ if i % 20 == 7 => (
                format!("not-an-address-{i},Bad {i},Co {i},en,emea,"),
                Expect::Failed("invalid-invitee"),
            ),
            50 => (
                format!("partner{i}@partner.example,Partner {i},Co {i},en,emea,,surplus"),
                Expect::Failed("wrong number of fields: 7 where the header has 6"),
            ),
            120 => (
                "partner10@partner.example,Partner 10,Co 10,en,emea,".to_owned(),
                Expect::SameAs(10),
            ),
            30 => (
                format!("partner{i}@partner.example,Partner {i},Co {i},de,apac,\"first\nsecond\""),
                Expect::Invited,
            ),
            _ => (
                format!("partner{i}@partner.example,Partner {i},Co {i},en,emea,"),
                Expect::Invited,
            ),
        };
        lines_of.push(line);
        expected.push((line, expect));
        line += 1 + row.matches('\n').count() as u64;
        text.push_str(&row);
        text.push('\n');
    }
    for e in &mut expected {
        if let Expect::SameAs(i) = e.1 {
            e.1 = Expect::SameAs(lines_of[i] as usize);
        }
    }
    (text, expected)
}

/// Fails when any redeem link (or its ticket) is in `text`.
fn assert_no_link(t: &TestApp, what: &str, text: &str) {
    let lower = text.to_ascii_lowercase();
    assert!(
        !lower.contains("redeem") && !lower.contains("ticket"),
        "{what} carries a link"
    );
    for url in t.graph.redeem_urls() {
        assert!(!text.contains(&url), "{what} carries a redeem URL");
    }
}

/// Checks each line of a first run's result against what its row should have come to.
fn check_row_by_row(rows: &[HashMap<String, String>], expected: &[(u64, Expect)]) {
    assert_eq!(rows.len(), expected.len());
    let mut ids = std::collections::HashSet::new();
    for (r, (line, expect)) in rows.iter().zip(expected) {
        assert_eq!(r["row"], line.to_string(), "{r:?}");
        match expect {
            Expect::Invited => {
                assert_eq!(r["status"], "invited", "{r:?}");
                assert_eq!(r["invitationId"].len(), 36, "{r:?}");
                assert!(
                    ids.insert(r["invitationId"].clone()),
                    "one invitation per row"
                );
                assert!(r["eventId"].starts_with("bulk-"), "{r:?}");
                assert_eq!(r["channels"], "slack;webhook");
                assert_eq!(r["email"], "p***@partner.example");
            }
            Expect::Failed(why) => {
                assert_eq!(r["status"], "failed", "{r:?}");
                assert!(r["reason"].contains(why), "{r:?}");
                assert!(r["invitationId"].is_empty());
            }
            Expect::SameAs(first_line) => {
                assert_eq!(r["status"], "duplicate", "{r:?}");
                assert!(r["reason"].contains(&format!("row {first_line}")), "{r:?}");
                let original = rows
                    .iter()
                    .find(|o| o["row"] == first_line.to_string())
                    .unwrap();
                assert_eq!(r["eventId"], original["eventId"]);
                assert_eq!(r["invitationId"], original["invitationId"]);
            }
        }
    }
}

#[tokio::test]
async fn bulk_200_rows_invite_the_good_ones_once_and_a_second_run_sends_nothing() {
    let (t, _) = bulk_app(Vec::new()).await;
    let dir = workdir();
    let (text, expected) = two_hundred_rows();
    let file = write(&dir, "partners.csv", &text);
    let invited = expected
        .iter()
        .filter(|e| matches!(e.1, Expect::Invited))
        .count();
    assert_eq!((expected.len(), invited), (200, 178));

    let started = Instant::now();
    let first = bulk(&t, &[&file]).await;
    eprintln!("200 rows, first run: {:?}", started.elapsed());
    assert_eq!(
        first.code,
        Some(3),
        "some rows failed: {}{}",
        first.stdout,
        first.stderr
    );

    let result_path = dir.join("partners.result.csv");
    let rows = result_rows(&result_path);
    check_row_by_row(&rows, &expected);
    assert_eq!(
        t.graph.invitation_calls().len(),
        invited,
        "one invitation per good row"
    );
    assert_eq!(t.slack.delivered().len(), invited);
    assert_eq!(t.hook.delivered().len(), invited);
    let result = std::fs::read_to_string(&result_path).unwrap();
    assert!(!result.contains("partner12@"), "addresses are masked");
    for (what, text) in [
        ("the result file", &result),
        ("stdout", &first.stdout),
        ("stderr", &first.stderr),
    ] {
        assert_no_link(&t, what, text);
    }
    assert!(
        first.stdout.contains("invited") && first.stdout.contains("178"),
        "{}",
        first.stdout
    );

    // The same file again: nothing new, every good row a duplicate with its first invitation.
    let second = bulk(&t, &[&file, "--json"]).await;
    assert_eq!(second.code, Some(3), "{}", second.stderr);
    let summary = second.json();
    assert_eq!(
        summary["counts"],
        json!({"duplicate": 179, "failed": 21}),
        "{summary}"
    );
    assert_eq!(summary["rows"], 200);
    assert_eq!(summary["failed"].as_array().unwrap().len(), 21);
    assert_eq!(
        t.graph.invitation_calls().len(),
        invited,
        "nothing invited twice"
    );
    assert_eq!(t.slack.delivered().len(), invited, "nothing sent twice");
    let again = result_rows(&result_path);
    for (r, before) in again.iter().zip(&rows) {
        if before["status"] == "invited" {
            assert_eq!(r["status"], "duplicate", "{r:?}");
            assert_eq!(r["invitationId"], before["invitationId"]);
        } else {
            assert_eq!(r["status"], before["status"], "{r:?}");
        }
    }
    assert_no_link(
        &t,
        "the second result",
        &std::fs::read_to_string(&result_path).unwrap(),
    );
    assert_no_link(&t, "the JSON summary", &second.stdout);
}

#[tokio::test]
async fn bulk_reads_entras_template_with_its_example_row() {
    let t = spawn_app().await;
    let dir = workdir();
    let file = write(
        &dir,
        "UserInviteTemplate.csv",
        "version:v1.0\n\
         Email address to invite [inviteeEmail] Required,Redirection url [inviteRedirectURL] Required,\
         Send invitation message (true or false) [sendEmail],Customized invitation message [customizedMessageBody]\n\
         Example:    ,Example:    ,Example:    ,Example:    \n\
         grace@partner.example,https://myapps.microsoft.com,true,Welcome to the project\n\
         alan@partner.example,https://portal.partner.example/start,false,\n",
    );
    let out = dir.join("out.csv");
    let run = bulk(
        &t,
        &[&file, "--out", out.to_str().unwrap(), "--show-emails"],
    )
    .await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);

    let rows = result_rows(&out);
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r["row"].as_str(), r["status"].as_str(), r["email"].as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("3", "skipped", ""),
            ("4", "invited", "grace@partner.example"),
            ("5", "invited", "alan@partner.example"),
        ]
    );
    assert!(rows[0]["reason"].contains("example row"));
    assert!(rows[1]["reason"].contains("sendEmail and customizedMessageBody not applied"));
    assert!(rows[2]["reason"].is_empty());
    let calls = t.graph.invitation_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[0].body["invitedUserEmailAddress"],
        "grace@partner.example"
    );
    assert_eq!(
        calls[0].body["sendInvitationMessage"], false,
        "Microsoft sends no email"
    );
    assert!(
        calls[0].body["inviteRedirectUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://myapps.microsoft.com")
    );
    assert!(
        calls[1].body["inviteRedirectUrl"]
            .as_str()
            .unwrap()
            .starts_with("https://portal.partner.example/start")
    );
    assert!(
        run.stdout
            .contains("note: sendEmail and customizedMessageBody are read but not applied")
    );
}

#[tokio::test]
async fn bulk_stops_before_sending_anything_without_a_usable_header() {
    let t = spawn_app().await;
    let dir = workdir();
    for (name, text) in [
        ("names.csv", "name,company\nAda Lovelace,Analytical\n"),
        ("empty.csv", ""),
        ("version-only.csv", "version:v1.0\n"),
    ] {
        let file = write(&dir, name, text);
        let run = bulk(&t, &[&file]).await;
        assert_eq!(run.code, Some(1), "{name}: {}", run.stdout);
        assert!(
            run.stderr.contains("nothing was sent"),
            "{name}: {}",
            run.stderr
        );
        assert!(!dir.join(name).with_extension("result.csv").exists());
    }
    let run = bulk(
        &t,
        &[
            &write(&dir, "x.csv", "email\na@partner.example\n"),
            "--source",
            "nope",
        ],
    )
    .await;
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("no source named \"nope\" is enabled"),
        "{}",
        run.stderr
    );
    assert!(t.graph.invitation_calls().is_empty() && t.graph.token_calls().is_empty());
    assert!(t.slack.delivered().is_empty());
}

#[tokio::test]
async fn bulk_dry_run_checks_every_row_and_sends_nothing() {
    let (t, table) = bulk_app(Vec::new()).await;
    let dir = workdir();
    let file = write(
        &dir,
        "p.csv",
        "email,displayName,redirectUrl,channels\n\
         ada@partner.example,Ada,,slack\n\
         bob@partner.example,Bob,https://portal.partner.example/x,\n\
         carol@partner.example,Carol,https://evil.example/,\n\
         dan@partner.example,Dan,,pigeon\n\
         erin@,Erin,,\n",
    );
    let dry = bulk(&t, &[&file, "--dry-run", "--json"]).await;
    assert_eq!(dry.code, Some(3), "{}", dry.stderr);
    let summary = dry.json();
    assert_eq!(summary["dryRun"], true);
    assert_eq!(
        summary["counts"],
        json!({"would-invite": 2, "failed": 3}),
        "{summary}"
    );
    let rows = result_rows(&dir.join("p.dry-run.csv"));
    assert_eq!(rows[0]["channels"], "slack");
    assert_eq!(rows[1]["channels"], "slack;webhook");
    assert!(
        rows[2]["reason"].contains("redirect-not-allowed"),
        "{:?}",
        rows[2]
    );
    assert!(
        rows[3]["reason"].contains("delivery.channels"),
        "{:?}",
        rows[3]
    );
    assert!(
        rows[4]["reason"].contains("invalid-invitee"),
        "{:?}",
        rows[4]
    );
    assert!(
        !dir.join("p.result.csv").exists(),
        "a rehearsal leaves the result alone"
    );
    assert!(t.graph.invitation_calls().is_empty());
    assert!(t.slack.delivered().is_empty() && t.hook.delivered().is_empty());
    assert!(scan_table(&table).await.is_empty(), "nothing claimed");

    // After the run, the rehearsal knows what is done.
    assert_eq!(bulk(&t, &[&file]).await.code, Some(3));
    assert_eq!(t.graph.invitation_calls().len(), 2);
    let again = bulk(&t, &[&file, "--dry-run", "--json"]).await.json();
    assert_eq!(
        again["counts"],
        json!({"duplicate": 2, "failed": 3}),
        "{again}"
    );
    assert_eq!(t.graph.invitation_calls().len(), 2);
}

#[tokio::test]
async fn bulk_in_queue_mode_enqueues_for_the_worker() {
    let (queue, dlq) = create_queues(3).await;
    let (t, _) = bulk_app(vec![
        ("PROCESSING_MODE", "queue".into()),
        ("QUEUE_URL", queue.clone()),
        ("DEAD_LETTER_QUEUE_URL", dlq),
    ])
    .await;
    let dir = workdir();
    let file = write(
        &dir,
        "q.csv",
        "eventId,email,displayName\n\
         crm-1,ada@partner.example,Ada\n\
         crm-2,bob@partner.example,Bob\n\
         crm-3,carol@partner.example,Carol\n\
         crm-1,ada@partner.example,Ada\n\
         crm-4,,Nobody\n",
    );
    let first = bulk(&t, &[&file, "--json"]).await;
    assert_eq!(first.code, Some(3), "{}", first.stderr);
    assert_eq!(first.json()["mode"], "queue");
    assert_eq!(
        first.json()["counts"],
        json!({"queued": 3, "duplicate": 1, "failed": 1})
    );
    assert!(
        t.graph.invitation_calls().is_empty(),
        "the worker invites, not the command"
    );

    let (batch, handles) = receive_batch(&queue, 10).await;
    assert_eq!(handles.len(), 3, "one message per event");
    let out = invite_relay::worker::handle(
        &t.app,
        batch.clone(),
        invite_relay::resilience::Deadline::after(Duration::from_secs(20)),
    )
    .await
    .unwrap();
    assert_eq!(delete_succeeded(&queue, &handles, &out).await, 0);
    assert_eq!(t.graph.invitation_calls().len(), 3);

    let second = bulk(&t, &[&file, "--json"]).await;
    assert_eq!(
        second.json()["counts"],
        json!({"duplicate": 4, "failed": 1})
    );
    let (_, left) = receive_batch(&queue, 10).await;
    assert!(left.is_empty(), "nothing enqueued again");
    assert_eq!(t.graph.invitation_calls().len(), 3);
}

#[tokio::test]
async fn bulk_sample_file_passes_a_dry_run() {
    let t = spawn_app().await;
    let sample = format!("{}/events/bulk-sample.csv", env!("CARGO_MANIFEST_DIR"));
    let out = workdir().join("sample.dry-run.csv");
    let run = bulk(&t, &[&sample, "--dry-run", "--out", out.to_str().unwrap()]).await;
    assert_eq!(run.code, Some(0), "{}{}", run.stdout, run.stderr);
    let rows = result_rows(&out);
    let got: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| {
            (
                r["row"].as_str(),
                r["eventId"].as_str(),
                r["channels"].as_str(),
            )
        })
        .collect();
    assert_eq!(
        got[..2],
        [
            ("2", "crm-opp-1001", "slack;webhook"),
            ("3", "crm-opp-1002", "slack")
        ]
    );
    assert_eq!((got[2].0, got[2].2), ("4", "slack;webhook"));
    assert!(
        got[2].1.starts_with("bulk-"),
        "no eventId: the row's content"
    );
    assert!(
        rows.iter().all(|r| r["status"] == "would-invite"),
        "{rows:?}"
    );
    assert!(run.stdout.contains("DRY RUN") && run.stdout.contains("would-invite"));
    assert!(t.graph.invitation_calls().is_empty());
}

#[tokio::test]
async fn bulk_names_the_permission_aws_refuses() {
    let (t, table) = bulk_app(Vec::new()).await;
    let proxy = devkit::FaultProxy::start(&aws_endpoint()).await.unwrap();
    let dir = workdir();
    let file = write(
        &dir,
        "p.csv",
        "email\nada@partner.example\nbob@partner.example\n",
    );

    // Every AWS call through the proxy: the secret's read at start-up is refused.
    proxy.fail_next("/", 400, "AccessDeniedException");
    let run = bulk_with(&t, &[("AWS_ENDPOINT_URL", &proxy.url)], &[&file]).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    let secret = format!("secretsmanager:GetSecretValue on secret {}", t.secret_id);
    assert!(run.stderr.contains(&secret), "{}", run.stderr);

    // Only DynamoDB through the proxy: the first row's record is refused, and the run stops.
    proxy.fail_next("/", 400, "AccessDeniedException");
    let run = bulk_with(&t, &[("AWS_ENDPOINT_URL_DYNAMODB", &proxy.url)], &[&file]).await;
    assert_eq!(run.code, Some(1), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("AccessDeniedException: your AWS credentials need dynamodb:")
            && run.stderr.contains(&format!("on table {table}"))
            && run.stderr.contains("stopped at line 2"),
        "{}",
        run.stderr
    );
    let rows = result_rows(&dir.join("p.result.csv"));
    assert_eq!(rows.len(), 1, "the run stops at the refused row");
    assert_eq!(rows[0]["status"], "failed");
    assert!(rows[0]["reason"].contains("dynamodb:"), "{:?}", rows[0]);
    assert!(t.graph.invitation_calls().is_empty());
}
