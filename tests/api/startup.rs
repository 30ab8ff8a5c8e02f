//! Start-up fails closed, with one clear message, before any event is taken.

use serde_json::Value;

use crate::helpers::*;

async fn startup_error(
    secret_overrides: &[(&str, Value)],
    env: Vec<(&'static str, String)>,
) -> String {
    let mut secret = serde_json::Map::new();
    for (k, v) in secret_overrides {
        secret.insert((*k).to_owned(), v.clone());
    }
    let (app, parts) = try_spawn_app_with(Options {
        secret,
        env,
        ..Options::default()
    })
    .await;
    let e = app.err().expect("start-up must fail");
    for v in &parts.secret_values {
        if v.len() >= 6 {
            assert!(!e.contains(v.as_str()), "the error leaks a secret value");
        }
    }
    e
}

#[tokio::test]
async fn no_channel_at_all_fails_at_startup() {
    let e = startup_error(
        &[
            ("slack_webhook_url", Value::Null),
            ("delivery_webhook_url", Value::Null),
        ],
        vec![],
    )
    .await;
    assert!(e.contains("no delivery channel"), "{e}");
}

#[tokio::test]
async fn missing_credentials_fail_at_startup() {
    let e = startup_error(&[("graph_client_secret", Value::Null)], vec![]).await;
    assert!(e.contains("graph_client_secret"), "{e}");
    let e = startup_error(&[("webhook_signing_secret", Value::Null)], vec![]).await;
    assert!(
        e.contains("generic") && e.contains("webhook_signing_secret"),
        "{e}"
    );
    let e = startup_error(
        &[("webhook_signing_secret", "not-a-whsec-key".into())],
        vec![],
    )
    .await;
    assert!(e.contains("whsec_"), "{e}");
    let e = startup_error(&[("delivery_signing_secret", Value::Null)], vec![]).await;
    assert!(e.contains("delivery_signing_secret"), "{e}");
}

#[tokio::test]
async fn plain_http_delivery_urls_need_the_explicit_opt_in() {
    let e = startup_error(
        &[],
        vec![("DELIVERY_ALLOW_PRIVATE_NETWORKS", "false".into())],
    )
    .await;
    assert!(
        e.contains("slack_webhook_url") && e.contains("https"),
        "{e}"
    );
}

#[tokio::test]
async fn missing_secret_fails_at_startup() {
    let e = startup_error(
        &[],
        vec![("RELAY_SECRET_ID", "invite-relay-does-not-exist".into())],
    )
    .await;
    assert!(e.contains("ResourceNotFoundException"), "{e}");
}

#[tokio::test]
async fn bad_relay_config_fails_at_startup_naming_the_line() {
    let e = startup_error(
        &[],
        vec![(
            "RELAY_CONFIG",
            "[sources.generic]\nscheme = \"hmac-md5\"\n".into(),
        )],
    )
    .await;
    assert!(e.contains("line 2") && e.contains("hmac-md5"), "{e}");
}

#[tokio::test]
async fn reading_the_secret_on_the_first_event_instead_fails_that_event_closed() {
    // SECRET_READ_AT_START=false: start-up doesn't read the secret, so a bad one surfaces on
    // the first event, which is refused (503, retryable) with nothing done.
    let mut secret = serde_json::Map::new();
    secret.insert("graph_client_secret".into(), Value::Null);
    let (app, parts) = try_spawn_app_with(Options {
        secret,
        env: vec![("SECRET_READ_AT_START", "false".into())],
        ..Options::default()
    })
    .await;
    let app = app.expect("start-up does not read the secret");
    let t = TestApp::from_parts(app, parts);
    let a = t.post(&sample_body()).await;
    assert_eq!(a.status, 503, "{}", a.raw);
    assert!(t.graph.invitation_calls().is_empty());

    // With a good secret the first event reads it and succeeds.
    let t = spawn_app_with(Options {
        env: vec![("SECRET_READ_AT_START", "false".into())],
        ..Options::default()
    })
    .await;
    assert_eq!(t.post(&sample_body()).await.status, 200);
}
