//! Signed checkpoints of the audit chain: a checkpoint kept outside the database catches a
//! truncated or rewritten history that verifies on its own; forged checkpoints are refused;
//! the scheduled step writes checkpoints anyone can verify with the JWKS.

use std::process::Stdio;

use sponsor_console::client::ApiClient;
use sponsor_console::client::checkpoint::{self, CheckpointProblem, CheckpointStore};
use sponsor_console::client::session::STATE_DIR_ENV;
use sponsor_console::domain::audit::seal;
use sponsor_console::domain::checkpoint::{CheckpointRefusal, Disagreement, latest_in};
use sponsor_console::protocol::audit::{CHECKPOINT_TYP, Checkpoint, CheckpointClaims};
use sponsor_console::server::chain::{CheckpointSinks, Checkpointer};
use sqlx::{Connection, Executor, SqliteConnection};

use crate::common::{TestServer, settings, sign_in, start_real_clock};

async fn busy_server() -> (TestServer, ApiClient) {
    let t = TestServer::start().await;
    let alice = t.as_user("alice").await;
    for i in 0..3 {
        t.agent(&alice, &format!("bot-{i}"), &["read:x"]).await;
    }
    let sam = t.as_user("sam").await;
    (t, sam)
}

/// The database file opened as an attacker would, without the append-only triggers.
async fn attacker(db: &std::path::Path) -> SqliteConnection {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    conn.execute("DROP TRIGGER audit_events_no_update")
        .await
        .unwrap();
    conn.execute("DROP TRIGGER audit_events_no_delete")
        .await
        .unwrap();
    conn
}

async fn truncate(db: &std::path::Path, rows: i64) {
    let mut conn = attacker(db).await;
    sqlx::query("DELETE FROM audit_events WHERE seq > (SELECT MAX(seq) FROM audit_events) - ?")
        .bind(rows)
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_truncated_tail_fails_against_the_kept_checkpoint() {
    let (t, sam) = busy_server().await;
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::at(dir.path());
    let first = checkpoint::verify(&sam, Some(&store), None).await.unwrap();
    assert!(first.ok(), "{first:?}");
    let kept = first.kept.clone().expect("a checkpoint is kept");
    assert_eq!(kept.seq, first.report.count);
    assert_eq!(store.load(sam.base()).unwrap(), Some(kept.clone()));

    truncate(&t.db, 2).await;
    // The chain alone still verifies: this is what the checkpoint is for.
    assert!(sam.audit_verify(None).await.unwrap().ok);

    let after = checkpoint::verify(&sam, Some(&store), None).await.unwrap();
    assert!(!after.ok());
    assert_eq!(
        after.problem,
        Some(CheckpointProblem::Disagrees(Disagreement::Shorter {
            kept: kept.seq,
            count: kept.seq - 2
        }))
    );
    assert!(after.problem.unwrap().to_string().contains("shortened"));
    // The evidence is not replaced by the shorter chain's head.
    assert_eq!(store.load(sam.base()).unwrap(), Some(kept));
}

#[tokio::test]
async fn a_rewritten_history_with_recomputed_hashes_fails_against_the_kept_checkpoint() {
    let (t, sam) = busy_server().await;
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::at(dir.path());
    let kept = checkpoint::verify(&sam, Some(&store), None)
        .await
        .unwrap()
        .kept
        .unwrap();

    // Rewrite from seq 3 onward, every hash recomputed and linked.
    let events = sam.audit_export().await.unwrap();
    let mut conn = attacker(&t.db).await;
    let mut prev = events[1].hash.clone();
    for e in &events[2..] {
        let mut event = e.event.clone();
        if event.seq == 3 {
            event.subject = "someone-else".into();
        }
        event.prev_hash = prev.clone();
        let sealed = seal(event).unwrap();
        sqlx::query("UPDATE audit_events SET subject = ?, prev_hash = ?, hash = ? WHERE seq = ?")
            .bind(&sealed.event.subject)
            .bind(&sealed.event.prev_hash)
            .bind(&sealed.hash)
            .bind(sealed.event.seq)
            .execute(&mut conn)
            .await
            .unwrap();
        prev = sealed.hash;
    }
    let alone = sam.audit_verify(None).await.unwrap();
    assert!(
        alone.ok,
        "the rewritten chain verifies on its own: {alone:?}"
    );
    assert_ne!(alone.head, kept.hash);

    let after = checkpoint::verify(&sam, Some(&store), None).await.unwrap();
    assert!(!after.ok());
    assert_eq!(
        after.problem,
        Some(CheckpointProblem::Disagrees(Disagreement::Rewritten {
            seq: kept.seq
        }))
    );
    assert_eq!(store.load(sam.base()).unwrap(), Some(kept));
}

/// A checkpoint signed by an Ed25519 key the server never published.
fn forged(kid: &str, claims: &CheckpointClaims) -> String {
    use ed25519_dalek::pkcs8::EncodePrivateKey;
    let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
    let der = key.to_pkcs8_der().unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some(kid.into());
    header.typ = Some(CHECKPOINT_TYP.into());
    jsonwebtoken::encode(
        &header,
        claims,
        &jsonwebtoken::EncodingKey::from_ed_der(der.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn bad_signatures_unknown_keys_and_other_issuers_are_refused() {
    let (t, sam) = busy_server().await;
    let good = sam.audit_verify(None).await.unwrap().checkpoint.unwrap();
    let claims = CheckpointClaims {
        iss: good.issuer.clone(),
        iat: good.at.timestamp(),
        seq: good.seq,
        hash: good.hash.clone(),
    };
    let refused = |c: Checkpoint| {
        let sam = sam.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let store = CheckpointStore::at(dir.path());
            let v = checkpoint::verify(&sam, Some(&store), Some(c))
                .await
                .unwrap();
            assert!(!v.ok());
            // Nothing is kept from a verification that failed.
            assert_eq!(store.load(sam.base()).unwrap(), None);
            match v.problem {
                Some(CheckpointProblem::Refused {
                    which: "given",
                    why,
                }) => why,
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    };

    let mut bad_signature = good.clone();
    let (signed, sig) = good.jws.rsplit_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut bytes = b64.decode(sig).unwrap();
    bytes[0] ^= 1;
    bad_signature.jws = format!("{signed}.{}", b64.encode(bytes));
    assert_eq!(refused(bad_signature).await, CheckpointRefusal::Signature);

    let mut unknown = good.clone();
    unknown.kid = "not-published".into();
    unknown.jws = forged("not-published", &claims);
    assert_eq!(refused(unknown).await, CheckpointRefusal::UnknownKey);

    let mut same_kid_other_key = good.clone();
    same_kid_other_key.jws = forged(&good.kid, &claims);
    assert_eq!(
        refused(same_kid_other_key).await,
        CheckpointRefusal::Signature
    );

    // The server's own key, but another issuer's claims.
    let elsewhere = CheckpointClaims {
        iss: "https://governance.elsewhere.example".into(),
        ..claims.clone()
    };
    let (kid, jws) = t
        .server
        .state
        .keys
        .sign_typed(CHECKPOINT_TYP, &elsewhere)
        .unwrap();
    let other_issuer = Checkpoint {
        issuer: elsewhere.iss.clone(),
        kid,
        jws,
        ..good.clone()
    };
    assert!(matches!(
        refused(other_issuer).await,
        CheckpointRefusal::Issuer { .. }
    ));

    // An access token is not a checkpoint, even signed by the same key.
    let mut token = good.clone();
    token.jws = t.sign_in("sam").await.access_token;
    assert_eq!(refused(token).await, CheckpointRefusal::Type);

    // A kept checkpoint of another issuer is refused too, and not replaced.
    let dir = tempfile::tempdir().unwrap();
    let store = CheckpointStore::at(dir.path());
    let mut foreign = good.clone();
    foreign.issuer = "https://governance.elsewhere.example".into();
    store.save(sam.base(), &foreign).unwrap();
    let v = checkpoint::verify(&sam, Some(&store), None).await.unwrap();
    assert!(matches!(
        v.problem,
        Some(CheckpointProblem::Refused { which: "kept", .. })
    ));
    assert_eq!(store.load(sam.base()).unwrap(), Some(foreign));
}

#[tokio::test]
async fn the_scheduled_step_writes_a_verifiable_line_and_a_failing_sink_stops_nothing() {
    let (t, sam) = busy_server().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("checkpoints.jsonl");
    let socket_path = dir.path().join("log");
    let syslog = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    let mut step = Checkpointer::new(CheckpointSinks {
        file: Some(file.clone()),
        stdout: false,
        syslog: Some(socket_path.clone()),
    });
    let written = step.step(&t.server.state).await.unwrap().expect("signed");
    let head = sam.audit_verify(None).await.unwrap();
    assert_eq!((written.seq, &written.hash), (head.count, &head.head));

    let line = latest_in(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(line, written);
    let jwks = t.client.jwks().await.unwrap();
    let claims = sponsor_console::domain::checkpoint::verify(&line, &jwks, &t.server.base_url())
        .expect("the line verifies with the JWKS");
    assert_eq!(claims.seq, head.count);

    let mut buf = vec![0u8; 8192];
    let n = syslog.recv(&mut buf).unwrap();
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.starts_with("<37>"), "{message}");
    assert!(message.contains(&written.jws), "{message}");

    // Nothing changed: nothing new is signed.
    assert_eq!(step.step(&t.server.state).await.unwrap(), None);

    // A sink that fails (no syslog socket) is logged; the file still gets the new head.
    let _ = t.as_user("bob").await;
    let mut broken = Checkpointer::new(CheckpointSinks {
        file: Some(file.clone()),
        stdout: false,
        syslog: Some(dir.path().join("no-such-socket")),
    });
    let next = broken.step(&t.server.state).await.unwrap().expect("signed");
    assert!(next.seq > written.seq);
    assert_eq!(
        latest_in(&std::fs::read_to_string(&file).unwrap()).unwrap(),
        next
    );
}

#[tokio::test]
async fn headless_audit_verify_fails_on_a_shortened_chain_and_a_forged_checkpoint() {
    let (server, dir) = start_real_clock(settings()).await;
    let base = server.base_url();
    let client = ApiClient::new(&base).unwrap();
    let tokens = sign_in(&client, "sam").await;
    let _ = sign_in(&client, "alice").await;
    let state_dir = dir.path().join("state");
    crate::common::save_session(&state_dir, &base, &tokens, "sam");
    let run = |args: &[&str]| {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_sponsor-console"));
        cmd.args(args)
            .args(["--server", base.as_str()])
            .env(STATE_DIR_ENV, &state_dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };
    let text = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();

    let ok = run(&["audit", "verify"]).output().await.unwrap();
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    assert!(text(&ok).contains("checkpoint kept: seq"), "{}", text(&ok));

    // A forged checkpoint given on the command line is refused (exit 8).
    let good = client
        .with_token(&tokens.access_token)
        .audit_verify(None)
        .await
        .unwrap()
        .checkpoint
        .unwrap();
    let mut forged_cp = good.clone();
    forged_cp.jws = forged(
        &good.kid,
        &CheckpointClaims {
            iss: good.issuer.clone(),
            iat: good.at.timestamp(),
            seq: good.seq,
            hash: good.hash.clone(),
        },
    );
    let file = dir.path().join("checkpoints.jsonl");
    std::fs::write(
        &file,
        format!("{}\n", serde_json::to_string(&forged_cp).unwrap()),
    )
    .unwrap();
    let file_arg = file.to_string_lossy().into_owned();
    let refused = run(&["audit", "verify", "--checkpoint", &file_arg])
        .output()
        .await
        .unwrap();
    assert_eq!(refused.status.code(), Some(8), "{}", text(&refused));
    assert!(text(&refused).contains("refused"), "{}", text(&refused));
    let garbage = dir.path().join("garbage.jsonl");
    std::fs::write(&garbage, "not a checkpoint\n").unwrap();
    let bad_file = run(&[
        "audit",
        "verify",
        "--checkpoint",
        &garbage.to_string_lossy(),
    ])
    .output()
    .await
    .unwrap();
    assert_eq!(bad_file.status.code(), Some(2));

    truncate(&dir.path().join("governance.db"), 1).await;
    let shortened = run(&["audit", "verify"]).output().await.unwrap();
    assert_eq!(shortened.status.code(), Some(6), "{}", text(&shortened));
    assert!(
        text(&shortened).contains("shortened"),
        "{}",
        text(&shortened)
    );
    server.shutdown().await.unwrap();
}
