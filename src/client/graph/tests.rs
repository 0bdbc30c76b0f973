//! Unit tests of the Graph client's pure helpers.

use super::*;

#[test]
fn ids_that_could_change_the_path_are_refused() {
    assert!(segment("9f2b5ddb-a50e-44a1-a6f4-f616322262ea").is_ok());
    for bad in ["", ".", "..", "a/b", "a?b", "a%2Fb", "a b", "é"] {
        assert!(segment(bad).is_err(), "{bad:?}");
    }
}

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
