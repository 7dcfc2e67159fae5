//! The storage layer on SQLite and on a real PostgreSQL, through the same code: messages,
//! codes, sessions, passwords, expiry, and the audit chain — including two writers (as two
//! gateway nodes on one database) appending at once.
// Tests: a panic is a failure report.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use postern_portal::store::{CodeCheck, NewMessage};
use postern_portal::{AuditLog, ChainError, MasterKey, MessageState, Store, StoreError};

fn new_message<'a>(to: &'a str, body: &'a [u8]) -> NewMessage<'a> {
    NewMessage {
        recipient: to,
        sender: "alice@hospital.example",
        sender_name: "Dr Alice",
        subject: "Labs",
        message: body,
        lifetime: 86_400,
        read_receipt: false,
        queue_id: "Q1",
    }
}

#[tokio::test]
async fn the_store_behaves_the_same_on_every_database() {
    let dir = tempfile::tempdir().unwrap();
    for (name, db) in common::every_database(dir.path()).await {
        assert_eq!(
            format!("{:?}", db.backend()).to_lowercase(),
            name,
            "the URL chose the backend"
        );
        let store = Store::new(db.clone(), MasterKey::new(&[3u8; 32]).unwrap());
        let body = b"Subject: Labs\r\n\r\nPHI body \x00\xff binary-safe\r\n";
        let d = store
            .deposit(&new_message("Office@Practice.example", body))
            .await
            .unwrap();
        let m = store.by_token(&d.token).await.unwrap();
        assert_eq!(m.recipient, "office@practice.example", "{name}");
        assert_eq!(m.state, MessageState::Active);
        assert!(matches!(
            store.by_token("not-a-token").await,
            Err(StoreError::NotFound)
        ));
        let (subject, got) = store.content(&d.id).await.unwrap();
        assert_eq!(
            (subject.as_str(), got.as_slice()),
            ("Labs", &body[..]),
            "{name}"
        );
        assert_eq!(
            store
                .list(Some("office@practice.example"))
                .await
                .unwrap()
                .len(),
            1
        );
        assert!(store
            .list(Some("other@x.example"))
            .await
            .unwrap()
            .is_empty());
        assert!(store.mark_opened(&d.id).await.unwrap());
        assert!(
            !store.mark_opened(&d.id).await.unwrap(),
            "{name}: first opening once"
        );

        // Codes: single use, older ones replaced, wrong ones counted to a lock.
        let c1 = store.issue_code(&d.id, 600, 5, 3600).await.unwrap();
        let c2 = store.issue_code(&d.id, 600, 5, 3600).await.unwrap();
        if c1 != c2 {
            assert_eq!(
                store.check_code(&d.id, &c1, 5, 900).await.unwrap(),
                CodeCheck::Wrong { locked: false },
                "{name}: a replaced code"
            );
        }
        assert_eq!(
            store.check_code(&d.id, &c2, 5, 900).await.unwrap(),
            CodeCheck::Accepted
        );
        assert!(matches!(
            store.check_code(&d.id, &c2, 5, 900).await.unwrap(),
            CodeCheck::Wrong { .. }
        ));
        let mut locked = false;
        for _ in 0..5 {
            if let CodeCheck::Wrong { locked: l } =
                store.check_code(&d.id, "x", 5, 900).await.unwrap()
            {
                locked |= l;
            }
        }
        assert!(locked, "{name}");
        assert!(matches!(
            store.check_code(&d.id, "x", 5, 900).await.unwrap(),
            CodeCheck::Locked(_)
        ));
        for _ in 0..3 {
            let _ = store.issue_code(&d.id, 600, 5, 3600).await;
        }
        assert!(matches!(
            store.issue_code(&d.id, 600, 5, 3600).await,
            Err(StoreError::TooManyCodes)
        ));

        // Sessions: proving rotates the cookie; timeouts end them.
        let (cookie, s) = store.new_session(Some(&d.id), false).await.unwrap();
        assert!(store.session(&cookie, 900, 3600).await.unwrap().is_some());
        let (cookie2, s2) = store
            .prove(&s, "office@practice.example", "one-time code", false)
            .await
            .unwrap();
        assert!(
            store.session(&cookie, 900, 3600).await.unwrap().is_none(),
            "{name}"
        );
        assert_eq!(s2.address.as_deref(), Some("office@practice.example"));
        assert!(store.session(&cookie2, 900, 3600).await.unwrap().is_some());
        let (cookie3, _) = store.new_session(None, false).await.unwrap();
        sqlx::query("UPDATE portal_session SET last_seen = last_seen - 1000")
            .execute(db.pool())
            .await
            .unwrap();
        assert!(
            store.session(&cookie3, 900, 3600).await.unwrap().is_none(),
            "{name}: idle"
        );

        store
            .set_password("office@practice.example", "$argon2id$x")
            .await
            .unwrap();
        store
            .set_password("OFFICE@practice.example", "$argon2id$y")
            .await
            .unwrap();
        assert_eq!(
            store
                .password_hash("office@practice.example")
                .await
                .unwrap()
                .as_deref(),
            Some("$argon2id$y")
        );

        // Destroying removes key and content for good.
        assert!(store.destroy(&d.id, MessageState::Revoked).await.unwrap());
        assert!(!store.destroy(&d.id, MessageState::Revoked).await.unwrap());
        assert!(matches!(
            store.content(&d.id).await,
            Err(StoreError::Gone(MessageState::Revoked))
        ));
        let e = store
            .deposit(&new_message("x@y.example", body))
            .await
            .unwrap();
        sqlx::query("UPDATE portal_message SET expires_at = 1 WHERE id = $1")
            .bind(&e.id)
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(
            store.due_for_expiry().await.unwrap(),
            vec![e.id.clone()],
            "{name}"
        );
        db.close().await;
    }
}

#[tokio::test]
async fn the_audit_chain_holds_with_two_writers_and_breaks_when_edited() {
    let dir = tempfile::tempdir().unwrap();
    for (name, db) in common::every_database(dir.path()).await {
        // Two logs on one database: two gateway nodes.
        let (a, b) = (AuditLog::new(db.clone()), AuditLog::new(db.clone()));
        let write = |log: AuditLog, who: &'static str| async move {
            for i in 0..25 {
                log.append(
                    who,
                    postern_portal::Action::Opened,
                    &format!("P{i}"),
                    None,
                    "x",
                )
                .await
                .unwrap();
            }
        };
        tokio::join!(write(a, "node-a"), write(b, "node-b"));
        let log = AuditLog::new(db.clone());
        let (rows, _) = log.verify().await.unwrap().unwrap();
        assert_eq!(rows, 50, "{name}");
        sqlx::query("UPDATE postern_audit SET detail = 'changed' WHERE seq = 7")
            .execute(db.pool())
            .await
            .unwrap();
        assert_eq!(
            log.verify().await.unwrap(),
            Err(ChainError::Edited { seq: 7 }),
            "{name}"
        );
        db.close().await;
    }
}

/// Every file in `dir` (the database, its WAL and shared memory) whose bytes hold `needle`.
fn files_holding(dir: &std::path::Path, needle: &[u8]) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            std::fs::read(p)
                .map(|b| b.windows(needle.len()).any(|w| w == needle))
                .unwrap_or(false)
        })
        .map(|p| p.display().to_string())
        .collect()
}

/// A revoked message's wrapped key and ciphertext are gone from every file SQLite keeps, the
/// WAL included (with the master key, a copy left in the WAL decrypts to the message).
#[tokio::test]
async fn destroyed_content_leaves_no_bytes_in_the_database_or_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let db = postern_portal::Db::sqlite(&dir.path().join("t.sqlite"))
        .await
        .unwrap();
    let store = Store::new(db.clone(), MasterKey::new(&[3u8; 32]).unwrap());
    // Big enough for overflow pages, as a message with an attachment has.
    let body: Vec<u8> = (0..20_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let d = store
        .deposit(&new_message("a@b.example", &body))
        .await
        .unwrap();
    use sqlx::Row;
    let row = sqlx::query("SELECT wrapped_key, body FROM portal_message WHERE id = $1")
        .bind(&d.id)
        .fetch_one(db.pool())
        .await
        .unwrap();
    let key: Vec<u8> = row.try_get(0).unwrap();
    let cipher: Vec<u8> = row.try_get(1).unwrap();
    // Pieces from the start, middle and end of the ciphertext, and the wrapped key.
    let pieces = [
        key.clone(),
        cipher[..32].to_vec(),
        cipher[cipher.len() / 2..cipher.len() / 2 + 32].to_vec(),
        cipher[cipher.len() - 32..].to_vec(),
    ];
    assert!(
        !files_holding(dir.path(), &pieces[1]).is_empty(),
        "the test can see the ciphertext while it is stored"
    );
    // Another message keeps the database busy, as a running portal does.
    store
        .deposit(&new_message("c@d.example", b"other"))
        .await
        .unwrap();
    assert!(store.destroy(&d.id, MessageState::Revoked).await.unwrap());
    for p in &pieces {
        assert_eq!(files_holding(dir.path(), p), Vec::<String>::new());
    }
    db.close().await;
}

/// Direct delivery tracking on both databases: a notification counts once per recipient and
/// kind (a duplicate or a replay is "again", a stranger's "unknown"); timely-and-reliable
/// messages need dispatched as well; a deadline is claimed by exactly one of two nodes asking
/// at once; finished rows are forgotten after their retention.
#[tokio::test]
async fn direct_tracking_counts_each_notification_once_and_each_deadline_once() {
    use postern_store::{Notice, Noticed, TrackState, TrackingStore};
    let dir = tempfile::tempdir().unwrap();
    for (name, db) in common::every_database(dir.path()).await {
        let t = TrackingStore::new(db.clone());
        let rcpts = [
            "Toby@redmond.example".to_string(),
            "ann@redmond.example".into(),
        ];
        t.track("<m1@nhind>", "biff@nhind.example", &rcpts, false, 100, 200)
            .await
            .unwrap();
        // Tracked again (a retry that reached more recipients): the rows stay as they are.
        t.track("<m1@nhind>", "biff@nhind.example", &rcpts, false, 150, 250)
            .await
            .unwrap();
        t.track(
            "<m2@nhind>",
            "biff@nhind.example",
            &rcpts[..1],
            true,
            100,
            200,
        )
        .await
        .unwrap();
        let n = |id: &str, r: &str, k| {
            let t = t.clone();
            let (id, r) = (id.to_string(), r.to_string());
            async move { t.notice(&id, &r, k, 120).await.unwrap() }
        };
        assert_eq!(
            n("<m1@nhind>", "toby@REDMOND.example", Notice::Processed).await,
            Noticed::First,
            "{name}"
        );
        assert_eq!(
            n("<m1@nhind>", "toby@redmond.example", Notice::Processed).await,
            Noticed::Again,
            "{name}"
        );
        assert_eq!(
            n("<m1@nhind>", "eve@redmond.example", Notice::Processed).await,
            Noticed::Unknown,
            "{name}"
        );
        assert_eq!(
            n("<nope@x>", "toby@redmond.example", Notice::Processed).await,
            Noticed::Unknown,
            "{name}"
        );
        // Reliable: processed alone leaves it pending; dispatched completes it.
        assert_eq!(
            n("<m2@nhind>", "toby@redmond.example", Notice::Processed).await,
            Noticed::First
        );
        let state = |id: &'static str| {
            let t = t.clone();
            async move {
                t.list(Some(id))
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| (r.recipient, r.state))
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(
            state("<m2@nhind>").await,
            [("toby@redmond.example".to_string(), TrackState::Pending)],
            "{name}"
        );
        assert_eq!(
            n("<m2@nhind>", "toby@redmond.example", Notice::Dispatched).await,
            Noticed::First
        );
        assert_eq!(
            state("<m2@nhind>").await,
            [("toby@redmond.example".to_string(), TrackState::Complete)],
            "{name}"
        );
        // Ann never answered: two nodes sweep at once, one of them reports her.
        let other_node = TrackingStore::new(db.clone());
        let (a, b) = tokio::join!(t.expire(300, 100), other_node.expire(300, 100));
        let expired: Vec<_> = a.unwrap().into_iter().chain(b.unwrap()).collect();
        assert_eq!(expired.len(), 1, "{name}: {expired:?}");
        assert_eq!(expired[0].recipient, "ann@redmond.example");
        assert_eq!(expired[0].sender, "biff@nhind.example");
        assert!(t.expire(400, 100).await.unwrap().is_empty(), "{name}");
        // A claim given back (the sender could not be told) is claimed again, once.
        t.unclaim("<m1@nhind>", "ann@redmond.example")
            .await
            .unwrap();
        assert_eq!(t.expire(400, 100).await.unwrap().len(), 1, "{name}");
        assert!(t.expire(400, 100).await.unwrap().is_empty(), "{name}");
        // A late processed still counts once, and the sender keeps what it was told.
        assert_eq!(
            n("<m1@nhind>", "ann@redmond.example", Notice::Processed).await,
            Noticed::First
        );
        assert!(state("<m1@nhind>")
            .await
            .contains(&("ann@redmond.example".to_string(), TrackState::TimedOut)));
        assert_eq!(t.purge(101).await.unwrap(), 3, "{name}");
        assert!(t.list(None).await.unwrap().is_empty(), "{name}");
        // Looked at before delivery, counted after: peek changes nothing.
        t.track("<m3@nhind>", "biff@nhind.example", &rcpts, true, 500, 600)
            .await
            .unwrap();
        let open = postern_store::Peeked::Open {
            sender: "biff@nhind.example".into(),
        };
        for _ in 0..2 {
            assert_eq!(
                t.peek("<m3@nhind>", "toby@redmond.example", Notice::Dispatched)
                    .await
                    .unwrap(),
                open,
                "{name}"
            );
        }
        assert_eq!(
            t.peek("<m3@nhind>", "x@redmond.example", Notice::Dispatched)
                .await
                .unwrap(),
            postern_store::Peeked::Unknown
        );
        // Dispatched before processed, then processed: complete; a failure afterwards wins.
        assert_eq!(
            n("<m3@nhind>", "toby@redmond.example", Notice::Dispatched).await,
            Noticed::First
        );
        assert_eq!(
            t.peek("<m3@nhind>", "toby@redmond.example", Notice::Dispatched)
                .await
                .unwrap(),
            postern_store::Peeked::Counted
        );
        assert_eq!(
            n("<m3@nhind>", "toby@redmond.example", Notice::Processed).await,
            Noticed::First
        );
        assert_eq!(
            state("<m3@nhind>").await[1],
            ("toby@redmond.example".to_string(), TrackState::Complete),
            "{name}"
        );
        assert_eq!(
            n("<m3@nhind>", "toby@redmond.example", Notice::Failed).await,
            Noticed::First
        );
        assert_eq!(
            n("<m3@nhind>", "toby@redmond.example", Notice::Failed).await,
            Noticed::Again
        );
        assert_eq!(
            state("<m3@nhind>").await[1],
            ("toby@redmond.example".to_string(), TrackState::Failed),
            "{name}"
        );
        // A handover that failed: the untouched row goes, a touched one stays.
        t.untrack("<m3@nhind>", &rcpts).await.unwrap();
        assert_eq!(
            state("<m3@nhind>").await,
            [("toby@redmond.example".to_string(), TrackState::Failed)],
            "{name}"
        );
        db.close().await;
    }
}
