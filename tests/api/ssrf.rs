//! Outbound safety through the real start-up and handler: delivery URLs must be https and
//! public, names are checked again when they resolve (at connect time), and redirects are not
//! followed. Private targets are only reachable with `DELIVERY_ALLOW_PRIVATE_NETWORKS=true`,
//! which is logged at start-up.

use devkit::{Receiver, ReceiverFault};
use reqwest::dns::Resolve;
use serde_json::json;

use crate::helpers::*;

fn public_only(secret: &[(&str, String)]) -> Options {
    let mut s = serde_json::Map::new();
    // A public URL for the other channel, so only the target under test is at fault.
    s.insert(
        "delivery_webhook_url".into(),
        "https://hooks.partner.example/invitations".into(),
    );
    for (k, v) in secret {
        s.insert((*k).into(), v.clone().into());
    }
    Options {
        secret: s,
        env: vec![("DELIVERY_ALLOW_PRIVATE_NETWORKS", "false".into())],
        ..Options::default()
    }
}

#[tokio::test]
async fn inward_and_plain_targets_stop_start_up_without_echoing_the_url() {
    let bad = [
        ("http://hooks.slack.com/services/T/B/X", "https"),
        ("https://127.0.0.1/hook", "non-public"),
        ("https://10.0.0.8/hook", "non-public"),
        ("https://172.31.255.1/hook", "non-public"),
        ("https://192.168.0.10/hook", "non-public"),
        ("https://169.254.169.254/latest/meta-data/", "non-public"),
        ("https://100.100.100.200/hook", "non-public"),
        ("https://0.0.0.0/hook", "non-public"),
        ("https://[::1]/hook", "non-public"),
        ("https://[fd12:3456::1]/hook", "non-public"),
        ("https://[fe80::1]/hook", "non-public"),
        ("https://[::ffff:169.254.169.254]/hook", "non-public"),
        ("https://[fd00:ec2::254]/latest/meta-data/", "non-public"),
        ("https://2852039166/latest/meta-data/", "non-public"),
        ("https://0xa9fea9fe/latest/meta-data/", "non-public"),
        (
            "https://0251.0376.0251.0376/latest/meta-data/",
            "non-public",
        ),
        ("https://localhost/hook", "non-public"),
        (
            "https://user:secret@hooks.slack.com/services/T/B/X",
            "not valid",
        ),
    ];
    for (url, why) in bad {
        let (app, _parts) =
            try_spawn_app_with(public_only(&[("slack_webhook_url", url.to_owned())])).await;
        let e = app.err().unwrap_or_else(|| panic!("{url} was accepted"));
        assert!(
            e.contains("slack_webhook_url") && e.contains(why),
            "{url}: {e}"
        );
        assert!(
            !e.contains(url),
            "the URL is a secret and is not echoed: {e}"
        );
    }
    // The control: a public https URL starts.
    let (app, _parts) = try_spawn_app_with(public_only(&[(
        "slack_webhook_url",
        "https://hooks.slack.com/services/T0001/B0001/XyZ".into(),
    )]))
    .await;
    assert!(app.is_ok(), "{:?}", app.err());
}

/// The machine's own name (`/etc/hosts` maps it to loopback or a private address).
fn own_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the kernel's hostname")
        .trim()
        .to_owned()
}

#[tokio::test]
async fn names_that_resolve_inward_are_refused_when_connecting() {
    let listener = Receiver::start(0, None).await.unwrap();
    let port = listener.url.rsplit(':').next().unwrap().to_owned();
    // The machine's own name passes the URL check, which can't know where a name points;
    // DNS says loopback (or a private address).
    {
        let host = own_hostname();
        let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host.as_str(), 443))
            .await
            .map(|a| a.collect())
            .unwrap_or_default();
        assert!(
            !resolved.is_empty()
                && resolved
                    .iter()
                    .all(|a| !invite_relay::delivery::guard::is_public(a.ip())),
            "{host} should resolve inward here: {resolved:?}"
        );
        let refused = invite_relay::delivery::guard::PublicOnlyResolver
            .resolve(host.parse().unwrap())
            .await;
        assert!(refused.is_err(), "the delivery resolver refuses {host}");

        let url = format!("https://{host}:{port}/hook");
        let t = spawn_app_with(public_only(&[("slack_webhook_url", url)])).await;
        let mut b = sample_body();
        b["delivery"] = json!({"channels": ["slack"]});
        let a = t.post(&b).await;
        a.assert_problem(503, "delivery-failed");
        assert_eq!(a.body["failed"][0]["channel"], "slack");
        assert_eq!(
            a.body["failed"][0]["reason"], "the channel's target is not allowed",
            "refused by the guard, not a network failure"
        );
        assert!(!a.raw.contains(&host), "the target is not echoed");
    }
    assert!(
        listener.received().is_empty(),
        "nothing reached the inward address"
    );
}

#[tokio::test]
async fn redirects_are_not_followed_even_to_a_reachable_private_target() {
    // Private targets allowed (local receivers), so the only protection left is not following.
    let t = spawn_app().await;
    let inner = Receiver::start(0, None).await.unwrap();
    for location in [
        "http://169.254.169.254/latest/meta-data/iam/security-credentials/".to_owned(),
        format!("{}/internal/admin", inner.url),
    ] {
        t.slack.fail_next(ReceiverFault::Redirect(location));
        let mut b = sample_body();
        b["id"] = format!("evt_{}", uuid_like()).into();
        b["delivery"] = json!({"channels": ["slack"]});
        let a = t.post(&b).await;
        a.assert_problem(503, "delivery-failed");
        assert!(
            a.body["failed"][0]["reason"]
                .as_str()
                .unwrap()
                .contains("HTTP 302"),
            "{}",
            a.raw
        );
    }
    assert!(
        inner.received().is_empty(),
        "the redirect target got nothing"
    );
}

#[tokio::test]
async fn allowing_private_networks_is_one_explicit_setting_logged_at_start_up() {
    let t = spawn_app().await;
    assert!(
        t.logs
            .text()
            .contains("DELIVERY_ALLOW_PRIVATE_NETWORKS=true"),
        "the opt-in is logged"
    );
    let (app, parts) = try_spawn_app_with(public_only(&[(
        "slack_webhook_url",
        "https://hooks.slack.com/services/T0001/B0001/XyZ".into(),
    )]))
    .await;
    assert!(app.is_ok());
    assert!(
        !parts
            .logs
            .text()
            .contains("DELIVERY_ALLOW_PRIVATE_NETWORKS")
    );
}
