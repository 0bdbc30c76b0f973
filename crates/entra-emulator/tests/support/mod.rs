//! Shared by the emulator's own tests: a started emulator (HTTPS, a manual clock) and a
//! client that trusts its CA.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use entra_emulator::{Emulator, EmulatorClock, EmulatorConfig};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::Value;

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 24, 9, 0, 0)
        .single()
        .unwrap()
}

pub struct Harness {
    pub emu: Emulator,
    pub http: reqwest::Client,
}

pub async fn start() -> Harness {
    start_with(EmulatorConfig::default()).await
}

pub async fn start_with(config: EmulatorConfig) -> Harness {
    let config = config.with_clock(EmulatorClock::manual(start_time()));
    let emu = Emulator::start(config).await.unwrap();
    let mut builder = reqwest::Client::builder();
    if let Some(pem) = emu.ca_pem() {
        builder =
            builder.add_root_certificate(reqwest::Certificate::from_pem(pem.as_bytes()).unwrap());
    }
    Harness {
        emu,
        http: builder.build().unwrap(),
    }
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub text: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

async fn answer(response: reqwest::Response) -> Answer {
    Answer {
        status: response.status(),
        headers: response.headers().clone(),
        text: response.text().await.unwrap(),
    }
}

impl Harness {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.emu.base_url())
    }

    pub async fn form(&self, url: &str, params: &[(&str, &str)]) -> Answer {
        answer(self.http.post(url).form(params).send().await.unwrap()).await
    }

    /// GET a Graph path (or a whole nextLink URL) with `token`.
    pub async fn get(&self, token: &str, path_or_url: &str) -> Answer {
        let url = if path_or_url.starts_with("http") {
            path_or_url.to_owned()
        } else {
            self.url(path_or_url)
        };
        answer(
            self.http
                .get(url)
                .bearer_auth(token)
                .header("client-request-id", "test-client-id")
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn patch(&self, token: &str, path: &str, body: &Value) -> Answer {
        answer(
            self.http
                .patch(self.url(path))
                .bearer_auth(token)
                .json(body)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub fn token(&self, user: &str) -> String {
        self.emu
            .access_token(user, "https://graph.microsoft.com/.default")
            .unwrap()
    }
}

/// The claims of a JWT, unverified (the tests check what the emulator put in).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine;
    let payload = jwt.split('.').nth(1).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

pub fn header(jwt: &str) -> Value {
    use base64::Engine;
    let part = jwt.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}
