//! One Graph call: a try (sent with the bearer token, a `client-request-id`, a timeout, and
//! read up to the size limit), the retries a throttled or unavailable answer gets, and the
//! decoding of what came back; and the paging of a list, guarded against loops, other hosts
//! and endless lists.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::Method;
use reqwest::header::{ACCEPT, CONTENT_TYPE, RETRY_AFTER};
use serde::Serialize;
use serde::de::DeserializeOwned;
use url::Url;

use super::error::ErrorBody;
use super::{
    Ack, Answer, CallIds, GraphClient, GraphError, Listed, delay, is_retryable, parse_retry_after,
};

/// One collection page.
#[derive(serde::Deserialize)]
struct Page<T> {
    value: Vec<T>,
    #[serde(default, rename = "@odata.nextLink")]
    next_link: Option<String>,
}

/// A 2xx answer's body.
struct Reply {
    status: u16,
    bytes: Vec<u8>,
    ids: CallIds,
    retries: u32,
}

/// One failed try: the error, the wait Graph named, whether sending again is safe.
struct Failed {
    error: GraphError,
    retry_after: Option<Duration>,
    again: bool,
}

/// A page's identity for the loop guard: the decoded path and the decoded, sorted query.
fn page_key(url: &Url) -> String {
    let path: String = url::form_urlencoded::parse(url.path().as_bytes())
        .map(|(k, v)| format!("{k}{v}"))
        .collect();
    let mut query: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    query.sort();
    format!("{path}?{query:?}")
}

impl GraphClient {
    /// One try: send, read at most `max_body_bytes`, and sort the answer.
    async fn try_once(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&[u8]>,
        ids: &CallIds,
        idempotent: bool,
    ) -> Result<Reply, Failed> {
        let inner = &self.inner;
        let fail = |error: GraphError, again: bool| Failed {
            error,
            retry_after: None,
            again,
        };
        let token = inner
            .auth
            .bearer()
            .await
            .map_err(|e| fail(GraphError::Token(e), false))?;
        let mut request = inner
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token)
            .header("client-request-id", &ids.client_request_id)
            .header("return-client-request-id", "true")
            .header(ACCEPT, "application/json")
            .timeout(inner.options.timeout);
        if let Some(body) = body {
            request = request
                .header(CONTENT_TYPE, "application/json")
                .body(body.to_vec());
        }
        let transport = |e: reqwest::Error, ids: &CallIds| {
            // Sent again only when nothing can have reached Graph, or when asking twice is
            // harmless (a read).
            let again = idempotent || e.is_connect();
            if e.is_timeout() {
                fail(
                    GraphError::Timeout {
                        timeout: inner.options.timeout,
                        ids: ids.clone(),
                    },
                    again,
                )
            } else {
                fail(
                    GraphError::Network {
                        message: e.to_string(),
                        ids: ids.clone(),
                    },
                    again,
                )
            }
        };
        let mut response = request.send().await.map_err(|e| transport(e, ids))?;
        let status = response.status().as_u16();
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let ids = CallIds {
            request_id: header("request-id"),
            client_request_id: ids.client_request_id.clone(),
        };
        let retry_after =
            header(RETRY_AFTER.as_str()).and_then(|v| parse_retry_after(&v, inner.clock.now()));
        let limit = inner.options.max_body_bytes;
        let too_large = |ids: &CallIds| {
            fail(
                GraphError::TooLarge {
                    limit,
                    ids: ids.clone(),
                },
                false,
            )
        };
        if response
            .content_length()
            .is_some_and(|n| n > u64::try_from(limit).unwrap_or(u64::MAX))
        {
            return Err(too_large(&ids));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| transport(e, &ids))? {
            if bytes.len() + chunk.len() > limit {
                return Err(too_large(&ids));
            }
            bytes.extend_from_slice(&chunk);
        }
        if (200..300).contains(&status) {
            return Ok(Reply {
                status,
                bytes,
                ids,
                retries: 0,
            });
        }
        // A throttled or unavailable change was not made; a gateway timeout may have been.
        let again = is_retryable(status) && (idempotent || status != 504);
        Err(Failed {
            error: api_error(status, &bytes, ids, retry_after),
            retry_after,
            again,
        })
    }

    /// Sends until an answer that is not worth retrying, within the retry policy.
    async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<&[u8]>,
        idempotent: bool,
    ) -> Result<Reply, GraphError> {
        let policy = &self.inner.options.retry;
        let ids = CallIds {
            request_id: None,
            client_request_id: uuid::Uuid::new_v4().to_string(),
        };
        let mut waited = Duration::ZERO;
        let mut retries = 0u32;
        loop {
            let failed = match self.try_once(&method, url, body, &ids, idempotent).await {
                Ok(reply) => return Ok(Reply { retries, ..reply }),
                Err(failed) => failed,
            };
            if !failed.again || retries + 1 >= policy.max_attempts {
                return Err(failed.error);
            }
            let Some(wait) = delay(policy, retries, failed.retry_after, rand::random::<f64>())
            else {
                return Err(failed.error);
            };
            if waited + wait > policy.max_total_wait {
                return Err(failed.error);
            }
            tracing::debug!(
                error = %failed.error,
                wait_ms = wait.as_millis() as u64,
                "Graph call retried"
            );
            (self.inner.sleep)(wait).await;
            waited += wait;
            retries += 1;
        }
    }

    /// `GET`, decoded as `T`.
    pub async fn get<T: DeserializeOwned>(&self, url: Url) -> Result<Answer<T>, GraphError> {
        let reply = self.send(Method::GET, &url, None, true).await?;
        Ok(Answer {
            value: decode(&reply.bytes, &reply.ids)?,
            ids: reply.ids,
        })
    }

    /// Every item of a collection: `@odata.nextLink` followed to the end, on Graph's own host,
    /// never back to a page already read, at most `max_pages` pages.
    pub async fn list<T: DeserializeOwned>(&self, url: Url) -> Result<Listed<T>, GraphError> {
        let mut seen = HashSet::from([page_key(&url)]);
        let mut items = Vec::new();
        let mut pages = 0;
        let mut next = Some(url);
        let mut ids = CallIds::default();
        while let Some(url) = next.take() {
            if pages >= self.inner.options.max_pages {
                return Err(GraphError::TooManyPages {
                    limit: self.inner.options.max_pages,
                    ids,
                });
            }
            let page: Answer<Page<T>> = self.get(url.clone()).await?;
            pages += 1;
            items.extend(page.value.value);
            ids = page.ids;
            if let Some(link) = page.value.next_link {
                let link = match url.join(&link) {
                    Ok(l) if self.same_origin(&l) => l,
                    _ => return Err(GraphError::ForeignLink { link, ids }),
                };
                if !seen.insert(page_key(&link)) {
                    return Err(GraphError::NextLinkLoop { page: pages, ids });
                }
                next = Some(link);
            }
        }
        Ok(Listed { items, pages, ids })
    }

    fn same_origin(&self, url: &Url) -> bool {
        let base = &self.inner.base;
        url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
    }

    /// `PATCH` with a JSON body; done only on a 2xx. Throttled (429) and unavailable (503)
    /// answers are retried (the change was not made); a gateway timeout or a lost connection
    /// is not (it may have been).
    pub async fn patch<B: Serialize + ?Sized>(
        &self,
        url: Url,
        body: &B,
    ) -> Result<Ack, GraphError> {
        let bytes = serde_json::to_vec(body)
            .map_err(|e| GraphError::Usage(format!("the request body: {e}")))?;
        let reply = self.send(Method::PATCH, &url, Some(&bytes), false).await?;
        Ok(Ack {
            status: reply.status,
            ids: reply.ids,
            retries: reply.retries,
        })
    }
}

/// Graph's error answer: its code and message, and the request id from the header or, failing
/// that, from `innerError`.
fn api_error(
    status: u16,
    bytes: &[u8],
    mut ids: CallIds,
    retry_after: Option<Duration>,
) -> GraphError {
    let body: Option<ErrorBody> = serde_json::from_slice(bytes).ok();
    let detail = body.map(|b| b.error).unwrap_or_default();
    if ids.request_id.is_none() {
        ids.request_id = detail.inner_error.and_then(|i| i.request_id);
    }
    GraphError::Api {
        status,
        code: detail
            .code
            .unwrap_or_else(|| format!("http{status}"))
            .chars()
            .filter(|c| c.is_ascii_graphic())
            .take(64)
            .collect(),
        message: crate::domain::text::sanitize_preview(
            detail.message.as_deref().unwrap_or("(no Graph error body)"),
        ),
        retry_after,
        ids,
    }
}

/// A 2xx body as `T`; a body that is not JSON and one missing a field say which.
fn decode<T: DeserializeOwned>(bytes: &[u8], ids: &CallIds) -> Result<T, GraphError> {
    serde_json::from_slice(bytes).map_err(|e| {
        let detail = match serde_json::from_slice::<serde_json::Value>(bytes) {
            Err(_) if bytes.is_empty() => "an empty body".to_owned(),
            Err(syntax) => format!("not JSON ({syntax})"),
            Ok(_) => format!("{e}"),
        };
        GraphError::BadAnswer {
            detail,
            ids: ids.clone(),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::super::query_value;
    use super::*;

    #[test]
    fn the_loop_guard_sees_through_encodings() {
        let a = Url::parse("https://g/v1.0/x/filterByCurrentUser(on='approver')?$filter=status%20eq%20'P'&$skiptoken=1")
            .unwrap();
        let b = Url::parse("https://g/v1.0/x/filterByCurrentUser(on=%27approver%27)?%24skiptoken=1&%24filter=status+eq+%27P%27")
            .unwrap();
        assert_eq!(page_key(&a), page_key(&b));
        let c = Url::parse("https://g/v1.0/x/filterByCurrentUser(on='approver')?$filter=status%20eq%20'P'&$skiptoken=2")
            .unwrap();
        assert_ne!(page_key(&a), page_key(&c));
        assert_eq!(
            query_value("status eq 'PendingApproval'"),
            "status%20eq%20'PendingApproval'"
        );
        assert_eq!(query_value("a&b=c#"), "a%26b%3Dc%23");
    }

    #[test]
    fn error_bodies_give_code_message_and_request_id() {
        let ids = CallIds {
            request_id: None,
            client_request_id: "c".into(),
        };
        let body = br#"{"error":{"code":"Conflict","message":"decided","innerError":{"request-id":"r-1","date":"x"}}}"#;
        let e = api_error(409, body, ids.clone(), None);
        assert_eq!(e.status(), Some(409));
        assert_eq!(e.code(), Some("Conflict"));
        assert_eq!(e.request_id(), Some("r-1"));
        assert!(e.to_string().contains("(request-id r-1)"), "{e}");
        let odata = br#"{"error":{"code":"x","message":"m","innererror":{"request-id":"r-2"}}}"#;
        assert_eq!(
            api_error(400, odata, ids.clone(), None).request_id(),
            Some("r-2")
        );
        let html = api_error(502, b"<html>\x1b[31mbad gateway</html>", ids.clone(), None);
        assert_eq!(html.code(), Some("http502"));
        assert!(html.to_string().contains("client-request-id c"), "{html}");
        assert!(matches!(
            decode::<Vec<u8>>(b"{\"value\":[{\"id\":\"", &ids),
            Err(GraphError::BadAnswer { detail, .. }) if detail.starts_with("not JSON")
        ));
        assert!(matches!(
            decode::<Vec<u8>>(b"", &ids),
            Err(GraphError::BadAnswer { detail, .. }) if detail == "an empty body"
        ));
    }
}
