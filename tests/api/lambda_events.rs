//! The event conversion held against artefacts the project did not write: the HTTP event
//! fixtures that ship with the AWS Lambda Rust runtime's own crates (`aws_lambda_events`'
//! `src/fixtures/`, `lambda_http`'s `tests/data/`, read from the Cargo registry where the
//! dependencies were unpacked). For every well-formed fixture, the function's conversion gives
//! the request `lambda_http` itself gives: method, URI, headers, body and the path as called.

use std::path::PathBuf;

use lambda_http::{Body, RequestExt};
use serde_json::Value;

/// The unpacked source folder of `crate_name` at the version `Cargo.lock` pins.
fn crate_dir(crate_name: &str) -> PathBuf {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock")).unwrap();
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains(&format!("name = \"{crate_name}\"\n")))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_owned())
        .expect("the crate is in Cargo.lock");
    let home = std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(std::env::var("HOME").unwrap()).join(".cargo"));
    std::fs::read_dir(home.join("registry/src"))
        .expect("the Cargo registry")
        .filter_map(Result::ok)
        .map(|index| index.path().join(format!("{crate_name}-{version}")))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| panic!("{crate_name}-{version} is not unpacked in the Cargo registry"))
}

fn fixtures() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    let events = crate_dir("aws_lambda_events").join("src/fixtures");
    let http = crate_dir("lambda_http").join("tests/data");
    for (dir, wanted) in [
        (
            events,
            &[
                "example-apigw-request",
                "example-apigw-v2-request-",
                "example-apigw-sam-",
            ][..],
        ),
        (http, &["apigw_", "lambda_function_url"][..]),
    ] {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json") && wanted.iter().any(|w| name.starts_with(w)) {
                let text = std::fs::read_to_string(entry.path()).unwrap();
                out.push((name, serde_json::from_str(&text).unwrap()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn body_bytes(b: &Body) -> Vec<u8> {
    match b {
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Binary(b) => b.clone(),
        _ => Vec::new(),
    }
}

#[test]
fn the_runtimes_own_fixtures_convert_as_lambda_http_converts_them() {
    let fixtures = fixtures();
    assert!(fixtures.len() >= 12, "found {} fixtures", fixtures.len());
    let mut compared = 0;
    for (name, event) in &fixtures {
        let ours = invite_relay::inbound::lambda::to_request(event.clone(), None)
            .unwrap_or_else(|r| panic!("{name}: refused: {}", r.problem.detail));
        let theirs = lambda_http::request::from_str(&event.to_string())
            .unwrap_or_else(|e| panic!("{name}: lambda_http: {e}"));
        assert_eq!(ours.method(), theirs.method(), "{name}");
        assert_eq!(ours.raw_http_path(), theirs.raw_http_path(), "{name}");
        assert_eq!(ours.uri().path(), theirs.uri().path(), "{name}: path");
        assert_eq!(ours.uri().host(), theirs.uri().host(), "{name}: host");
        assert_eq!(ours.uri().scheme(), theirs.uri().scheme(), "{name}: scheme");
        // lambda_http re-serialises a REST API's query from its parameter map; compare the
        // parameters, not their order.
        let params = |q: Option<&str>| {
            let mut v: Vec<(String, String)> =
                url::form_urlencoded::parse(q.unwrap_or("").as_bytes())
                    .into_owned()
                    .collect();
            v.sort();
            v
        };
        assert_eq!(
            params(ours.uri().query()),
            params(theirs.uri().query()),
            "{name}: query"
        );
        for (k, v) in theirs.headers() {
            if k == http::header::COOKIE {
                continue; // built from `cookies`; the function reads no cookie
            }
            assert!(
                ours.headers().get_all(k).iter().any(|o| o == v),
                "{name}: header {k} differs"
            );
        }
        assert_eq!(
            body_bytes(ours.body()),
            body_bytes(theirs.body()),
            "{name}: body"
        );
        compared += 1;
    }
    assert_eq!(compared, fixtures.len());
}
