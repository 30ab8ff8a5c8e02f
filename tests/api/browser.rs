//! The managed link's page in a real browser: headless Chromium (Debian's `chromium`, driven
//! through `chromedriver`'s W3C WebDriver endpoints) opens the link a channel delivered,
//! through a local Function URL in front of the real function, in two languages; the page
//! loads consume nothing; pressing Accept lands on the (emulated) redeem link.
//! Screenshots are kept in `target/test-artifacts/`.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use devkit::function_url::{FunctionUrl, Handler};
use serde_json::{Value, json};

use crate::helpers::*;
use crate::links::{LINK_KEY, config, token_of};

struct Driver {
    _child: tokio::process::Child,
    url: String,
    http: reqwest::Client,
}

struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

/// A loopback listener held from the start: its port is in the function's configuration
/// before the Function URL serves on it, and no other process can take it meanwhile.
fn listener() -> (std::net::TcpListener, u16) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    (l, port)
}

impl Driver {
    async fn start() -> Self {
        let bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        assert!(
            std::path::Path::new(&bin).exists(),
            "{bin} is missing: install Debian's chromium and chromium-driver (scripts/test does)"
        );
        // chromedriver binds the port itself: released just before it starts.
        let port = listener().1;
        let child = tokio::process::Command::new(&bin)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let d = Self {
            _child: child,
            url: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        for _ in 0..200 {
            if let Ok(r) = d.http.get(format!("{}/status", d.url)).send().await
                && r.status().is_success()
            {
                return d;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not become ready");
    }

    async fn session(&self) -> Session<'_> {
        let binary = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": binary, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=900,700", "--lang=en"]}}}});
        let v = self
            .call(reqwest::Method::POST, "/session", Some(caps))
            .await;
        Session {
            driver: self,
            id: v["sessionId"].as_str().expect("a session").to_owned(),
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req.send().await.unwrap().json().await.unwrap();
        assert!(v["value"]["error"].is_null(), "webdriver: {v}");
        v["value"].clone()
    }
}

impl Session<'_> {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        self.driver
            .call(method, &format!("/session/{}{path}", self.id), body)
            .await
    }
    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", Some(json!({"url": url})))
            .await;
    }
    /// Opens `url` and waits until the page shows `text`, as a person would wait for it: a busy
    /// machine can leave the first document blank for a moment, so an empty page is opened
    /// again (loading the page consumes nothing). The page as last seen.
    async fn open_until_shown(&self, url: &str, text: &str) -> String {
        let mut page = String::new();
        for attempt in 0..150 {
            if attempt % 25 == 0 {
                self.go(url).await;
            }
            page = self.source().await;
            if page.contains(text) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        page
    }
    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }
    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", None)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }
    async fn screenshot(&self, name: &str) {
        let png = self.call(reqwest::Method::GET, "/screenshot", None).await;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    async fn click(&self, css: &str) {
        let el = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({"using": "css selector", "value": css})),
            )
            .await;
        let id = el
            .as_object()
            .and_then(|o| o.values().next())
            .and_then(Value::as_str)
            .expect("the element")
            .to_owned();
        self.call(
            reqwest::Method::POST,
            &format!("/element/{id}/click"),
            Some(json!({})),
        )
        .await;
    }
    async fn quit(self) {
        self.call(reqwest::Method::DELETE, "", None).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_landing_page_works_in_a_real_browser() {
    let table = create_table().await;
    let (listener, port) = listener();
    let base = format!("http://127.0.0.1:{port}/");
    let mut secret = serde_json::Map::new();
    secret.insert("link_key".into(), LINK_KEY.into());
    let t = spawn_app_with(Options {
        secret,
        env: vec![
            ("RELAY_CONFIG", config()),
            ("LINK_BASE_URL", base.clone()),
            ("IDEMPOTENCY_TABLE", table),
        ],
        ..Options::default()
    })
    .await;
    t.graph.serve_redeem_locally();
    // The Function URL in front of another instance of the function (the same table).
    let function = Arc::new(build_app(&t.env).await.unwrap());
    let handler: Handler = Arc::new(move |event| {
        let f = function.clone();
        Box::pin(async move { f.on_lambda_event(event, None).await })
    });
    let _url = FunctionUrl::start_on(handler, listener).unwrap();

    let a = t.post(&sample_body()).await;
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    let mut de = sample_body();
    de["id"] = "evt_de".into();
    de["invitee"]["email"] = "grete@partner.example".into();
    de["invitee"]["displayName"] = "Grete Müller".into();
    de["invitee"]["language"] = "de".into();
    let a = t.post(&de).await;
    assert_eq!(a.body["status"], "invited", "{}", a.raw);
    let links: Vec<String> = t
        .slack
        .delivered()
        .iter()
        .map(|m| {
            let at = m.body.find(&base).expect("a managed link");
            m.body[at..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || "-_/:.".contains(*c))
                .collect()
        })
        .collect();
    assert_eq!(links.len(), 2);
    assert!(token_of(&links[0]).len() == 43);
    let invited = t.graph.invitation_calls().len();

    let driver = Driver::start().await;
    let s = driver.session().await;
    let page = s.open_until_shown(&links[0], "Contoso invites you").await;
    if !page.contains("Contoso invites you") {
        let direct = reqwest::get(&links[0]).await.map(|r| r.status());
        panic!("the browser got: {page}\n(the same link fetched directly: {direct:?})");
    }
    s.screenshot("landing-en.png").await;
    let page = s.open_until_shown(&links[1], "Contoso lädt Sie ein").await;
    assert!(page.contains("Contoso lädt Sie ein"), "{page}");
    assert!(page.contains("Grete Müller"));
    s.screenshot("landing-de.png").await;
    assert_eq!(
        t.graph.invitation_calls().len(),
        invited,
        "opening the page (as a link scanner would) consumes nothing"
    );

    s.click("button[type=submit]").await;
    let mut landed = String::new();
    for _ in 0..300 {
        landed = s.url().await;
        if landed.contains("/redeem?") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        landed.starts_with(&format!("{}/redeem?", t.graph.url)),
        "{landed}"
    );
    assert_eq!(
        t.graph.invitation_calls().len(),
        invited + 1,
        "one re-invitation"
    );
    assert_eq!(
        t.graph.invitation_calls().last().unwrap().body["invitedUserEmailAddress"],
        "grete@partner.example"
    );
    assert_eq!(t.graph.redemptions().len(), 1);
    assert!(landed.contains(&t.graph.redemptions()[0]));
    s.quit().await;
    let opened = t
        .hook
        .delivered()
        .iter()
        .filter(|r| r.body.contains("\"invitation.opened\""))
        .count();
    assert_eq!(opened, 1);
}
