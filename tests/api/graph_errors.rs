//! Graph failures map to documented statuses; nothing is delivered without an invitation.

use devkit::Fault;
use serde_json::json;

use crate::helpers::*;

async fn send_with_fault(fault: Fault) -> (TestApp, Answer) {
    let t = spawn_app().await;
    t.graph.fail_next_invitation(fault);
    let a = t.post(&sample_body()).await;
    assert!(
        t.slack.received().is_empty() && t.hook.received().is_empty(),
        "no delivery without an invitation"
    );
    (t, a)
}

#[tokio::test]
async fn graph_400_is_422_with_the_code_but_not_the_message() {
    let (t, a) = send_with_fault(Fault::Status {
        status: 400,
        code: "BadRequest",
        retry_after: None,
    })
    .await;
    a.assert_problem(422, "graph-rejected");
    assert_eq!(a.body["graphCode"], "BadRequest");
    assert_eq!(a.body["graphStatus"], 400);
    assert!(
        !a.raw.contains("Injected failure"),
        "the Graph message (which echoes the email) is not passed on"
    );
    assert_eq!(t.graph.invitation_calls().len(), 1);
}

#[tokio::test]
async fn graph_403_is_422() {
    let (_t, a) = send_with_fault(Fault::Status {
        status: 403,
        code: "Authorization_RequestDenied",
        retry_after: None,
    })
    .await;
    a.assert_problem(422, "graph-rejected");
    assert_eq!(a.body["graphCode"], "Authorization_RequestDenied");
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
    let t = spawn_app().await;
    for _ in 0..2 {
        t.graph.fail_next_invitation(Fault::Status {
            status: 401,
            code: "InvalidAuthenticationToken",
            retry_after: None,
        });
    }
    let a = t.post(&sample_body()).await;
    a.assert_problem(502, "upstream-auth");
    assert!(t.graph.created().is_empty());
}

#[tokio::test]
async fn graph_429_is_503_with_retry_after() {
    let (t, a) = send_with_fault(Fault::Status {
        status: 429,
        code: "TooManyRequests",
        retry_after: Some(7),
    })
    .await;
    a.assert_problem(503, "upstream-unavailable");
    assert!(t.graph.created().is_empty());
    // The CRM's retry succeeds once Graph recovers.
    let b = t.post(&sample_body()).await;
    assert_eq!(b.status, 200, "{}", b.raw);
    assert_eq!(t.graph.created().len(), 1);
    assert_eq!(t.slack.delivered().len(), 1);
}

#[tokio::test]
async fn graph_429_passes_retry_after_to_the_caller() {
    let t = spawn_app().await;
    t.graph.fail_next_invitation(Fault::Status {
        status: 429,
        code: "TooManyRequests",
        retry_after: Some(7),
    });
    let resp = t
        .app
        .handle(to_request(&signed_event(&sample_body().to_string())))
        .await;
    assert_eq!(resp.status(), 503);
    assert_eq!(resp.headers()["retry-after"], "7");
}

#[tokio::test]
async fn graph_500_is_503() {
    let (_t, a) = send_with_fault(Fault::Status {
        status: 500,
        code: "generalException",
        retry_after: None,
    })
    .await;
    a.assert_problem(503, "upstream-unavailable");
}

#[tokio::test]
async fn graph_timeout_is_503() {
    let (_t, a) = send_with_fault(Fault::Delay(std::time::Duration::from_secs(4))).await;
    a.assert_problem(503, "upstream-unavailable");
    assert!(a.body["detail"].as_str().unwrap().contains("timeout"));
}

#[tokio::test]
async fn created_without_redeem_url_is_a_failure() {
    let (_t, a) = send_with_fault(Fault::NoRedeemUrl).await;
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
