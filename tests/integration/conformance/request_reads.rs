//! Conformance: a request reads back as it was stored, listed or alone, and lists and
//! decisions come in their order.

use std::sync::Arc;

use sponsor_console::domain::role::Role;
use sponsor_console::protocol::requests::{Decision, RequestKind, RequestStatus};
use sponsor_console::server::store::{ChildSpec, RequestFilter, Store};

use super::{agent, at, decision, new_request, sponsor, submit};

/// A request reads back exactly as stored, listed or alone: every optional field, a child's
/// name, a decision with its own window and capabilities, and text that needs escaping.
pub async fn a_request_reads_back_field_for_field(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let a = agent(s, 1, &alice.id, &[]).await;
    let child = agent(s, 2, &alice.id, &[]).await;
    let odd = "\"quoted\" back\\slash /slash\ttab\nline é 漢 🦀 \u{7f} \u{2028} nul\u{0} end";
    let mut r = new_request("req_1", &a, &["write:x", "read:y/z.w"], 2);
    r.kind = RequestKind::Delegation;
    r.child = Some(ChildSpec::Existing(child.clone()));
    r.justification = odd.into();
    r.context = Some(format!("context {odd}"));
    r.on_behalf_of = Some("bob".into());
    submit(s, r, at(0)).await;
    let mut first = decision(&alice, Decision::Approve, Some(1800));
    first.choice.capabilities = Some(vec!["write:x".into()]);
    first.choice.justification = format!("why {odd}");
    s.decide_request("req_1", first, at(1))
        .await
        .expect("recorded");
    let alone = s.request("req_1").await.expect("read").expect("present");
    assert_eq!(alone.kind, RequestKind::Delegation);
    assert_eq!(alone.child_did.as_deref(), Some(child.as_str()));
    assert_eq!(alone.child_name.as_deref(), Some("agent-2"));
    assert_eq!(alone.capabilities, ["write:x", "read:y/z.w"]);
    assert_eq!(alone.justification, odd);
    assert_eq!(alone.context, Some(format!("context {odd}")));
    assert_eq!(alone.on_behalf_of.as_deref(), Some("bob"));
    assert_eq!(alone.ticket.as_deref(), Some("FIN-1"));
    assert_eq!(alone.policy, super::requirement(2));
    assert_eq!((alone.created_at, alone.expires_at), (at(0), at(3600)));
    assert_eq!((alone.decided_at, alone.reason.as_deref()), (None, None));
    let [approval] = alone.approvals.as_slice() else {
        unreachable!("one decision: {:?}", alone.approvals)
    };
    assert_eq!(approval.approver_username, "alice");
    assert_eq!(approval.duration_seconds, Some(1800));
    assert_eq!(
        approval.capabilities.as_deref(),
        Some(&["write:x".to_owned()][..])
    );
    assert_eq!(approval.justification, format!("why {odd}"));
    assert_eq!(approval.at, at(1));
    for filter in [
        RequestFilter {
            status: Some(RequestStatus::Pending),
            limit: 5,
            ..RequestFilter::default()
        },
        RequestFilter {
            sponsor_id: Some(alice.id.clone()),
            limit: 5,
            ..RequestFilter::default()
        },
    ] {
        let listed = s.list_requests(&filter).await.expect("list");
        assert_eq!(listed, std::slice::from_ref(&alone), "{filter:?}");
    }
    s.cancel_request("req_1", &a, odd, at(2))
        .await
        .expect("cancelled");
    let ended = s.request("req_1").await.expect("read").expect("present");
    assert_eq!(ended.reason.as_deref(), Some(odd));
    assert_eq!(ended.decided_at, Some(at(2)));
}

/// Decisions read back in the order they were made, two at the same moment by approver id;
/// lists come soonest-to-expire first when pending, newest first otherwise, ties by id.
pub async fn decisions_and_lists_read_back_in_order(store: Arc<dyn Store>) {
    let s = store.as_ref();
    let alice = sponsor(s, "alice", &[Role::Sponsor]).await;
    let mut leads = [
        sponsor(s, "sam", &[Role::SecurityLead]).await,
        sponsor(s, "bob", &[Role::SecurityLead]).await,
        sponsor(s, "eve", &[Role::SecurityLead]).await,
    ];
    // Ids descending, at 5, 4, 5: made-order differs from id order and from call order.
    leads.sort_by(|x, y| y.id.cmp(&x.id));
    let a = agent(s, 1, &alice.id, &[]).await;
    submit(s, new_request("req_1", &a, &["write:x"], 4), at(0)).await;
    let mut expected = Vec::new();
    for (lead, t) in leads.iter().zip([5, 4, 5]) {
        s.decide_request("req_1", decision(lead, Decision::Approve, None), at(t))
            .await
            .expect("recorded");
        expected.push((t, lead.id.clone()));
    }
    expected.sort();
    let listed = s
        .list_requests(&RequestFilter {
            limit: 5,
            ..RequestFilter::default()
        })
        .await
        .expect("list");
    let alone = s.request("req_1").await.expect("read").expect("present");
    for r in [&listed[0], &alone] {
        let got: Vec<(i64, String)> = r
            .approvals
            .iter()
            .map(|d| ((d.at - at(0)).num_seconds(), d.approver_id.clone()))
            .collect();
        assert_eq!(got, expected);
    }
    // Made at the same moment, expiring at the same moment: ties go by id either way.
    for id in ["req_4", "req_2", "req_3"] {
        let mut r = new_request(id, &a, &["write:x"], 1);
        r.expires_at = at(600);
        submit(s, r, at(10)).await;
    }
    let ids = |status| async move {
        let filter = RequestFilter {
            status,
            limit: 10,
            ..RequestFilter::default()
        };
        let list = s.list_requests(&filter).await.expect("list");
        list.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    let expected = ["req_2", "req_3", "req_4", "req_1"];
    assert_eq!(ids(Some(RequestStatus::Pending)).await, expected);
    assert_eq!(ids(None).await, expected);
}
