//! `devkit`: local stand-ins for the demo.
//!
//! ```text
//! devkit serve --graph-port 4010 --receiver-port 4020 [--delivery-secret whsec_...]
//! devkit sign  --secret whsec_... [--set-id ID] events/function-url-generic.json   # signed event on stdout
//! devkit send  --secret whsec_... [--set-id ID] --url http://127.0.0.1:9000/lambda-url/webhook/webhooks/generic events/function-url-generic.json
//! ```
//!
//! `--set-id` replaces the body's top-level `id` first (a new event from the same sample).
//! `send` also takes a plain JSON body file (anything that is not a Lambda HTTP event).

use std::collections::HashMap;
use std::sync::Arc;

use devkit::events;
use devkit::receiver::Received;
use devkit::{GraphEmulator, GraphSettings, Receiver};

fn usage() -> ! {
    eprintln!(
        "usage:\n  devkit serve --graph-port P --receiver-port P [--delivery-secret whsec_...]\n  \
         devkit sign --secret whsec_... EVENT_FILE\n  devkit send --secret whsec_... --url URL EVENT_FILE"
    );
    std::process::exit(2)
}

/// `--name value` pairs and positional arguments.
fn parse(args: &[String]) -> (HashMap<String, String>, Vec<String>) {
    let mut flags = HashMap::new();
    let mut positional = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if let Some(name) = a.strip_prefix("--") {
            let Some(v) = it.next() else { usage() };
            flags.insert(name.to_owned(), v.clone());
        } else {
            positional.push(a.clone());
        }
    }
    (flags, positional)
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first() else { usage() };
    let (flags, positional) = parse(&args[1..]);
    match cmd.as_str() {
        "serve" => serve(&flags).await,
        "sign" => {
            let (secret, file) = (
                flags.get("secret").unwrap_or_else(|| usage()),
                positional.first().unwrap_or_else(|| usage()),
            );
            let mut event = load(file, &flags);
            events::sign_event(&mut event, secret);
            println!("{}", serde_json::to_string_pretty(&event).expect("JSON"));
        }
        "send" => {
            let secret = flags.get("secret").unwrap_or_else(|| usage());
            let url = flags.get("url").unwrap_or_else(|| usage());
            let file = positional.first().unwrap_or_else(|| usage());
            std::process::exit(send(secret, url, load(file, &flags)).await);
        }
        _ => usage(),
    }
}

/// Reads an event file, replacing the body's `id` when `--set-id` is given.
fn load(file: &str, flags: &HashMap<String, String>) -> serde_json::Value {
    let mut event = read_event(file);
    if let Some(id) = flags.get("set-id") {
        let mut body: serde_json::Value = serde_json::from_slice(&events::event_body(&event))
            .unwrap_or_else(|e| {
                eprintln!("{file}: the body is not JSON: {e}");
                std::process::exit(1)
            });
        body["id"] = serde_json::Value::String(id.clone());
        events::set_event_body(&mut event, &body.to_string());
    }
    event
}

fn read_event(file: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| {
        eprintln!("{file}: {e}");
        std::process::exit(1)
    });
    let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| {
        eprintln!("{file}: {e}");
        std::process::exit(1)
    });
    if value.get("requestContext").is_some() {
        value
    } else {
        // A plain body: carry it as a Lambda event's body.
        serde_json::json!({"body": text, "isBase64Encoded": false})
    }
}

/// Posts the event's body, as a CRM would, with a fresh signature. Exit code 0 on 2xx.
async fn send(secret: &str, url: &str, event: serde_json::Value) -> i32 {
    let body = events::event_body(&event);
    let mut req = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json");
    for (k, v) in events::standard_webhooks_headers(secret, &body) {
        req = req.header(k, v);
    }
    match req.body(body).send().await {
        Ok(resp) => {
            let status = resp.status();
            let text = resp.text().await.unwrap_or_default();
            let pretty = serde_json::from_str::<serde_json::Value>(&text)
                .map(|v| serde_json::to_string_pretty(&v).unwrap_or(text.clone()))
                .unwrap_or(text);
            println!("HTTP {status}\n{pretty}");
            i32::from(!status.is_success())
        }
        Err(e) => {
            eprintln!("request failed: {e}");
            1
        }
    }
}

async fn serve(flags: &HashMap<String, String>) {
    let port = |name: &str| {
        flags
            .get(name)
            .map(|p| p.parse::<u16>().unwrap_or_else(|_| usage()))
            .unwrap_or(0)
    };
    let mut settings = GraphSettings::default();
    if let Some(v) = flags.get("tenant-id") {
        settings.tenant_id = v.clone();
    }
    if let Some(v) = flags.get("client-id") {
        settings.client_id = v.clone();
    }
    if let Some(v) = flags.get("client-secret") {
        settings.client_secret = v.clone();
    }
    let graph = GraphEmulator::start(settings, port("graph-port"))
        .await
        .expect("bind Graph emulator");
    let delivery_secret = flags.get("delivery-secret").cloned();
    let printer = Arc::new(move |r: &Received| print_delivery(r, delivery_secret.as_deref()));
    let receiver = Receiver::start(port("receiver-port"), Some(printer))
        .await
        .expect("bind receiver");
    println!("graph+token emulator on {}", graph.url);
    println!("channel receiver on {}", receiver.url);
    println!("ready");
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("signal handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    let created = graph.created().len();
    println!(
        "emulator: {created} invitation(s) created, {} token(s) issued",
        graph.issued_tokens().len()
    );
}

/// What the channel's recipient would get, readably.
fn print_delivery(r: &Received, delivery_secret: Option<&str>) {
    let body = r.json();
    if r.path.starts_with("/slack") {
        println!("\n[slack] {} {}", r.method, r.path);
        println!("  text:   {}", body["text"].as_str().unwrap_or(""));
        if let Some(blocks) = body["blocks"].as_array() {
            for b in blocks {
                if let Some(t) = b["text"]["text"].as_str() {
                    println!("  block:  {}", t.replace('\n', "\n          "));
                }
                if let Some(els) = b["elements"].as_array() {
                    for e in els {
                        if let Some(url) = e["url"].as_str() {
                            println!(
                                "  button: [{}] -> {url}",
                                e["text"]["text"].as_str().unwrap_or("")
                            );
                        }
                    }
                }
            }
        }
    } else if r.path.starts_with("/teams") {
        let card = &body["attachments"][0]["content"];
        println!(
            "\n[teams] {} {}  ({} {})",
            r.method,
            r.path,
            body["attachments"][0]["contentType"]
                .as_str()
                .unwrap_or("?"),
            card["version"].as_str().unwrap_or("?")
        );
        for b in card["body"].as_array().into_iter().flatten() {
            println!("  text:   {}", b["text"].as_str().unwrap_or(""));
        }
        for a in card["actions"].as_array().into_iter().flatten() {
            println!(
                "  action: {} [{}] -> {}",
                a["type"].as_str().unwrap_or(""),
                a["title"].as_str().unwrap_or(""),
                a["url"].as_str().unwrap_or("")
            );
        }
    } else {
        let verdict = match delivery_secret {
            Some(secret) => {
                let mut h = axum::http::HeaderMap::new();
                for (k, v) in &r.headers {
                    if let (Ok(k), Ok(v)) = (
                        axum::http::HeaderName::try_from(k.as_str()),
                        axum::http::HeaderValue::try_from(v.as_str()),
                    ) {
                        h.insert(k, v);
                    }
                }
                match standardwebhooks::Webhook::new(secret)
                    .map(|w| w.verify(r.body.as_bytes(), &h))
                {
                    Ok(Ok(())) => "signature valid",
                    _ => "SIGNATURE INVALID",
                }
            }
            None => "signature not checked",
        };
        println!(
            "\n[webhook] {} {}  ({verdict}, webhook-id {})",
            r.method,
            r.path,
            r.header("webhook-id").unwrap_or("-")
        );
        println!(
            "  {}",
            serde_json::to_string_pretty(&body)
                .unwrap_or_default()
                .replace('\n', "\n  ")
        );
    }
}
