//! Graph failures map to documented statuses; transient ones are retried within the request's
//! deadline; nothing is delivered without an invitation.

use std::time::{Duration, Instant};

use devkit::Fault;
use invite_relay::resilience::Deadline;
use serde_json::json;

use crate::helpers::*;

/// Sends the sample with `fault` queued `times` times and a 3 s invocation deadline.
async fn send_with_fault(fault: Fault, times: usize) -> (TestApp, Answer) {
    let t = spawn_app().await;
    for _ in 0..times {
        t.graph.fail_next_invitation(fault.clone());
    }
    let a = t
        .post_until(&sample_body(), Deadline::after(Duration::from_secs(3)))
        .await;
    assert!(
        t.slack.received().is_empty() && t.hook.received().is_empty(),
        "no delivery without an invitation"
    );
    (t, a)
}

const PERSISTENT: usize = 50;

#[tokio::test]
async fn graph_400_is_422_with_the_code_but_not_the_message() {
    let (t, a) = send_with_fault(
        Fault::Status {
            status: 400,
            code: "BadRequest",
            retry_after: None,
        },
        1,
    )
    .await;
    a.assert_problem(422, "graph-rejected");
    assert_eq!(a.body["graphCode"], "BadRequest");
    assert_eq!(a.body["graphStatus"], 400);
    assert!(
        !a.raw.contains("Injected failure"),
        "the Graph message (which echoes the email) is not passed on"
    );
    assert_eq!(
        t.graph.invitation_calls().len(),
        1,
        "permanent errors are not retried"
    );
}

#[tokio::test]
async fn graph_403_is_422_and_pauses_further_invitations() {
    let (t, a) = send_with_fault(
        Fault::Status {
            status: 403,
            code: "Authorization_RequestDenied",
            retry_after: None,
        },
        1,
    )
    .await;
    a.assert_problem(422, "graph-rejected");
    assert_eq!(a.body["graphCode"], "Authorization_RequestDenied");
    // The circuit is open: the next event is not sent to Graph at all.
    let mut b = sample_body();
    b["id"] = "evt_next".into();
    let next = t.post(&b).await;
    next.assert_problem(503, "upstream-unavailable");
    assert!(next.body["detail"].as_str().unwrap().contains("paused"));
    assert_eq!(t.graph.invitation_calls().len(), 1);
    assert!(
        t.logs
            .lines()
            .iter()
            .any(|l| l["alarm"] == "graph_circuit_open"),
        "one alarmable line"
    );
}

#[tokio::test]
async fn graph_401_once_refreshes_the_token_and_succeeds() {
    let t = spawn_app().await;
    t.graph.fail_next_invitation(Fault::Status {
        status: 401,
        code: "InvalidAuthenticationToken",
        retry_after: None,
    });
    let a = t.post(&sample_body()).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(
        t.graph.token_calls().len(),
        2,
        "a fresh token after the 401"
    );
    assert_eq!(t.graph.created().len(), 1);
}

#[tokio::test]
async fn graph_401_twice_is_502_upstream_auth() {
    let (t, a) = send_with_fault(
        Fault::Status {
            status: 401,
            code: "InvalidAuthenticationToken",
            retry_after: None,
        },
        2,
    )
    .await;
    a.assert_problem(502, "upstream-auth");
    assert!(t.graph.created().is_empty());
}

#[tokio::test]
async fn transient_graph_failures_are_retried_within_the_request() {
    let t = spawn_app().await;
    t.graph.fail_next_invitation(Fault::Status {
        status: 500,
        code: "generalException",
        retry_after: None,
    });
    t.graph.fail_next_invitation(Fault::Status {
        status: 429,
        code: "TooManyRequests",
        retry_after: Some(1.0),
    });
    let started = Instant::now();
    let a = t.post(&sample_body()).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(t.graph.invitation_calls().len(), 3);
    assert_eq!(t.graph.created().len(), 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
}

#[tokio::test]
async fn persistent_429_is_503_with_retry_after_and_the_retry_succeeds() {
    let (t, a) = send_with_fault(
        Fault::Status {
            status: 429,
            code: "TooManyRequests",
            retry_after: Some(7.0),
        },
        PERSISTENT,
    )
    .await;
    a.assert_problem(503, "upstream-unavailable");
    assert_eq!(
        a.body["detail"],
        "Microsoft Graph is throttling; retry later"
    );
    assert_eq!(
        t.graph.invitation_calls().len(),
        1,
        "a Retry-After beyond the deadline is left to the sender"
    );
    assert!(t.graph.created().is_empty());
    // The CRM's retry succeeds once Graph recovers.
    t.graph.clear_faults();
    let b = t.post(&sample_body()).await;
    assert_eq!(b.status, 200, "{}", b.raw);
    assert_eq!(t.graph.created().len(), 1);
    assert_eq!(t.slack.delivered().len(), 1);
}

#[tokio::test]
async fn graph_429_passes_retry_after_to_the_caller() {
    let t = spawn_app().await;
    for _ in 0..PERSISTENT {
        t.graph.fail_next_invitation(Fault::Status {
            status: 429,
            code: "TooManyRequests",
            retry_after: Some(7.0),
        });
    }
    let req = to_request(&signed_event(&sample_body().to_string()));
    let resp = t
        .app
        .on_http_until(req, Deadline::after(Duration::from_secs(3)))
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "7");
}

#[tokio::test]
async fn persistent_500_is_503() {
    let (t, a) = send_with_fault(
        Fault::Status {
            status: 500,
            code: "generalException",
            retry_after: None,
        },
        PERSISTENT,
    )
    .await;
    a.assert_problem(503, "upstream-unavailable");
    assert!(t.graph.invitation_calls().len() > 1, "retried with backoff");
}

#[tokio::test]
async fn a_slow_graph_never_outlives_the_deadline() {
    // The call starts (1.5 s fit in the 2 s left), Graph hangs, the call times out, and no
    // second attempt is started because it could not finish in time.
    let t = spawn_app_with(Options {
        env: vec![("OUTBOUND_TIMEOUT_MS", "1500".into())],
        ..Options::default()
    })
    .await;
    for _ in 0..PERSISTENT {
        t.graph
            .fail_next_invitation(Fault::Delay(Duration::from_secs(20)));
    }
    let started = Instant::now();
    let a = t
        .post_until(&sample_body(), Deadline::after(Duration::from_secs(2)))
        .await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1400),
        "the call was in flight ({took:?})"
    );
    assert!(
        took < Duration::from_millis(2500),
        "answered after {took:?}"
    );
    a.assert_problem(503, "upstream-unavailable");
    assert_eq!(
        t.graph.invitation_calls().len(),
        0,
        "the hung call never completed"
    );
    assert!(t.slack.received().is_empty());

    // With a generous timeout the deadline itself bounds the wait.
    let t = spawn_app_with(Options {
        env: vec![("OUTBOUND_TIMEOUT_MS", "8000".into())],
        ..Options::default()
    })
    .await;
    t.graph
        .fail_next_invitation(Fault::Delay(Duration::from_secs(20)));
    let started = Instant::now();
    t.post_until(&sample_body(), Deadline::after(Duration::from_secs(10)))
        .await
        .assert_problem(503, "upstream-unavailable");
    assert!(
        started.elapsed() < Duration::from_millis(10_500),
        "answered after {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn created_without_redeem_url_is_a_failure() {
    let (_t, a) = send_with_fault(Fault::NoRedeemUrl, 1).await;
    a.assert_problem(502, "upstream-invalid");
    assert!(
        a.body["detail"]
            .as_str()
            .unwrap()
            .contains("inviteRedeemUrl")
    );
}

#[tokio::test]
async fn rotated_client_secret_is_picked_up_from_secrets_manager() {
    let t = spawn_app().await;
    assert_eq!(t.post(&sample_body()).await.status, 200);

    // Rotation: Entra accepts only the new secret, Secrets Manager holds it, the cached token expired.
    t.graph.set_client_secrets(&["rotated-client-secret-value"]);
    t.graph.revoke_tokens();
    let sdk = sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let current: serde_json::Value = serde_json::from_str(
        sm.get_secret_value()
            .secret_id(&t.secret_id)
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap(),
    )
    .unwrap();
    let mut next = current.clone();
    next["graph_client_secret"] = json!("rotated-client-secret-value");
    sm.put_secret_value()
        .secret_id(&t.secret_id)
        .secret_string(next.to_string())
        .send()
        .await
        .unwrap();

    let mut b = sample_body();
    b["id"] = "evt_after_rotation".into();
    let a = t.post(&b).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    let statuses: Vec<u16> = t.graph.token_calls().iter().map(|c| c.status).collect();
    assert_eq!(statuses, vec![200, 401, 200]);
    assert!(!t.logs.text().contains("rotated-client-secret-value"));
}

/// Graph's throttling sample sends `Retry-After: 2.128`: the wait honours the fraction, and a
/// sender told to come back is told the whole seconds rounded up.
#[tokio::test]
async fn a_fractional_retry_after_is_honoured() {
    let t = spawn_app().await;
    t.graph.fail_next_invitation(Fault::Status {
        status: 429,
        code: "TooManyRequests",
        retry_after: Some(1.5),
    });
    let started = Instant::now();
    let a = t.post(&sample_body()).await;
    assert_eq!(a.status, 200, "{}", a.raw);
    assert_eq!(t.graph.invitation_calls().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "waited {:?}, not the 1.5 s Graph asked for",
        started.elapsed()
    );

    let (_t, a) = send_with_fault(
        Fault::Status {
            status: 429,
            code: "TooManyRequests",
            retry_after: Some(7.128),
        },
        PERSISTENT,
    )
    .await;
    a.assert_problem(503, "upstream-unavailable");
    assert_eq!(a.body["status"], 503);
    assert_eq!(a.retry_after.as_deref(), Some("8"));
}

/// An invitation answered with the documented status `Error` invited nobody: nothing is
/// delivered, and the event can be tried again.
#[tokio::test]
async fn an_invitation_in_status_error_is_a_failure() {
    let (t, a) = send_with_fault(Fault::StatusError, 1).await;
    a.assert_problem(502, "upstream-invalid");
    assert_eq!(t.graph.invitation_calls().len(), 1);
}
