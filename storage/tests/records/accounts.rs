//! The [`AccountStore`] part of the contract: accounts and their unique emails, external
//! identities, refresh tokens.

use wagu_proto::model::UnixMillis;
use wagu_proto::records::AccountId;
use wagu_storage::records::{AccountRecord, AccountStore, RecordError, RefreshRecord, RefreshUse};

use crate::support::*;

pub(crate) const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";

pub(crate) fn account(tag: &str, who: &str, display_name: &str) -> AccountRecord {
    AccountRecord {
        id: AccountId(rand_id()),
        email: format!("{tag}.{who}@example.com"),
        display_name: display_name.into(),
        password_hash: PHC.into(),
        created_at: now_ms(),
    }
}

pub(crate) async fn accounts<S: AccountStore>(s: &S, tag: &str) {
    let alice = account(tag, "alice", "Alice");
    let bob = account(tag, "bob", "밥");
    assert_eq!(s.account(&alice.id).await.unwrap(), None, "unknown id");
    assert_eq!(
        s.account_by_email(&alice.email).await.unwrap(),
        None,
        "unknown email"
    );
    s.create_account(&alice).await.expect("create alice");
    s.create_account(&bob).await.expect("create bob");
    for a in [&alice, &bob] {
        assert_eq!(s.account(&a.id).await.unwrap().as_ref(), Some(a), "by id");
        assert_eq!(
            s.account_by_email(&a.email).await.unwrap().as_ref(),
            Some(a),
            "by email"
        );
    }

    // A second account with a taken email is refused and leaves no trace.
    let mallory = AccountRecord {
        id: AccountId(rand_id()),
        display_name: "Mallory".into(),
        ..alice.clone()
    };
    match s.create_account(&mallory).await {
        Err(RecordError::Taken(_)) => {}
        other => panic!("duplicate email: expected RecordError::Taken, got {other:?}"),
    }
    assert_eq!(
        s.account(&mallory.id).await.unwrap(),
        None,
        "a refused account is not stored"
    );
    assert_eq!(
        s.account_by_email(&alice.email).await.unwrap(),
        Some(alice.clone()),
        "the email still leads to the first account"
    );

    // Two sign-ups racing for one email: exactly one wins.
    let one = account(tag, "race", "One");
    let two = AccountRecord {
        id: AccountId(rand_id()),
        display_name: "Two".into(),
        ..one.clone()
    };
    let (r1, r2) = tokio::join!(s.create_account(&one), s.create_account(&two));
    let (winner, loser) = match (&r1, &r2) {
        (Ok(()), Err(RecordError::Taken(_))) => (&one, &two),
        (Err(RecordError::Taken(_)), Ok(())) => (&two, &one),
        _ => panic!(
            "two concurrent sign-ups with one email: expected one Ok and one Taken, got {r1:?} and {r2:?}"
        ),
    };
    assert_eq!(
        s.account_by_email(&one.email).await.unwrap().as_ref(),
        Some(winner),
        "the email leads to the account that won"
    );
    assert_eq!(
        s.account(&loser.id).await.unwrap(),
        None,
        "the account that lost is not stored"
    );
}

/// Accounts of an OpenID Connect log-in: one per (provider, subject), created once however
/// many first log-ins race, and their email is not a login.
pub(crate) async fn identities<S: AccountStore>(s: &S, tag: &str) {
    let oidc = |who: &str, name: &str| AccountRecord {
        password_hash: String::new(),
        ..account(tag, who, name)
    };
    let subject = format!("{tag}-sub-1");
    assert_eq!(
        s.account_by_identity("kakao", &subject).await.unwrap(),
        None,
        "an identity never linked"
    );

    let first = oidc("kakao-1", "카카오 사용자");
    assert_eq!(
        s.create_account_for_identity(&first, "kakao", &subject)
            .await
            .expect("create_account_for_identity"),
        first,
        "a first log-in creates the account given"
    );
    assert_eq!(
        s.account_by_identity("kakao", &subject).await.unwrap(),
        Some(first.clone()),
        "by identity"
    );
    assert_eq!(
        s.account(&first.id).await.unwrap(),
        Some(first.clone()),
        "by id"
    );

    // A later first log-in through the same identity (another fresh id) gets the linked
    // account and creates nothing.
    let second = AccountRecord {
        id: AccountId(rand_id()),
        display_name: "Second".into(),
        ..first.clone()
    };
    assert_eq!(
        s.create_account_for_identity(&second, "kakao", &subject)
            .await
            .unwrap(),
        first,
        "an identity already linked returns its account"
    );
    assert_eq!(
        s.account(&second.id).await.unwrap(),
        None,
        "no second account for a linked identity"
    );
    assert_eq!(
        s.account_by_identity("kakao", &subject).await.unwrap(),
        Some(first.clone()),
        "the identity still leads to the first account"
    );

    // The same subject under another provider is another identity.
    assert_eq!(
        s.account_by_identity("google", &subject).await.unwrap(),
        None,
        "the subject under another provider is not linked"
    );
    let elsewhere = oidc("google-1", "Google User");
    assert_eq!(
        s.create_account_for_identity(&elsewhere, "google", &subject)
            .await
            .unwrap(),
        elsewhere,
        "the same subject under another provider gets its own account"
    );
    assert_eq!(
        s.account_by_identity("google", &subject).await.unwrap(),
        Some(elsewhere.clone())
    );
    assert_eq!(
        s.account_by_identity("kakao", &subject).await.unwrap(),
        Some(first.clone()),
        "linking another provider's subject leaves this one alone"
    );

    // The email of an identity's account is not claimed: a password sign-up can take it.
    assert_eq!(
        s.account_by_email(&first.email).await.unwrap(),
        None,
        "an identity's email is not a login"
    );
    let password = AccountRecord {
        id: AccountId(rand_id()),
        display_name: "Password".into(),
        password_hash: PHC.into(),
        ..first.clone()
    };
    s.create_account(&password)
        .await
        .expect("a password sign-up with the email of an identity's account");
    assert_eq!(
        s.account_by_email(&first.email).await.unwrap(),
        Some(password.clone()),
        "the email leads to the password account"
    );
    assert_eq!(
        s.account_by_identity("kakao", &subject).await.unwrap(),
        Some(first.clone()),
        "the identity still leads to its own account"
    );

    // Concurrent first log-ins through one identity: one account, the same for both.
    for round in 0..4 {
        let subject = format!("{tag}-race-{round}");
        let one = oidc(&format!("race-{round}-a"), "One");
        let two = oidc(&format!("race-{round}-b"), "Two");
        let (r1, r2) = tokio::join!(
            s.create_account_for_identity(&one, "kakao", &subject),
            s.create_account_for_identity(&two, "kakao", &subject)
        );
        let (r1, r2) = (r1.unwrap(), r2.unwrap());
        assert_eq!(
            r1.id, r2.id,
            "round {round}: concurrent first log-ins return the same account"
        );
        let (winner, loser) = if r1.id == one.id {
            (&one, &two)
        } else {
            (&two, &one)
        };
        assert_eq!(
            r1, *winner,
            "round {round}: the account returned is one of the two given"
        );
        assert_eq!(r2, *winner, "round {round}: both get the winner's account");
        assert_eq!(
            s.account_by_identity("kakao", &subject).await.unwrap(),
            Some(winner.clone()),
            "round {round}: the identity leads to the winner"
        );
        assert_eq!(
            s.account(&loser.id).await.unwrap(),
            None,
            "round {round}: the loser's account is not stored"
        );
    }
}

pub(crate) fn refresh_record(
    account: &AccountId,
    family: &str,
    expires_at: UnixMillis,
) -> RefreshRecord {
    RefreshRecord {
        hash: format!(
            "{:032x}{:032x}",
            rand::random::<u128>(),
            rand::random::<u128>()
        ),
        account: account.clone(),
        family: family.into(),
        expires_at,
    }
}

pub(crate) async fn refresh_tokens<S: AccountStore>(s: &S, tag: &str) {
    let now = now_ms();
    let acc = AccountId(rand_id());
    let fam = |n: u32| format!("{tag}-family-{n}");

    // Never issued.
    let ghost = refresh_record(&acc, &fam(0), now + HOUR);
    assert_eq!(
        s.use_refresh(&ghost.hash, now).await.unwrap(),
        RefreshUse::Unknown,
        "a token never issued"
    );

    // Spent once, then replayed.
    let t = refresh_record(&acc, &fam(1), now + HOUR);
    s.put_refresh(&t).await.expect("put_refresh");
    assert_eq!(
        s.use_refresh(&t.hash, now).await.unwrap(),
        RefreshUse::Fresh(t.clone()),
        "first use"
    );
    assert_eq!(
        s.use_refresh(&t.hash, now + 1).await.unwrap(),
        RefreshUse::Reused(t.clone(), now),
        "second use: reused, spent at the first use's `now`"
    );
    assert_eq!(
        s.use_refresh(&t.hash, now + MINUTE).await.unwrap(),
        RefreshUse::Reused(t.clone(), now),
        "third use: still the first use's time"
    );
    // Spent at another time than the suite's `now`: the time reported is that use's.
    let t2 = refresh_record(&acc, &fam(1), now + HOUR);
    s.put_refresh(&t2).await.expect("put_refresh");
    assert_eq!(
        s.use_refresh(&t2.hash, now + 7).await.unwrap(),
        RefreshUse::Fresh(t2.clone()),
        "first use, at now + 7"
    );
    assert_eq!(
        s.use_refresh(&t2.hash, now + 9).await.unwrap(),
        RefreshUse::Reused(t2.clone(), now + 7),
        "second use: spent at now + 7"
    );

    // Revoking a family kills its unspent, spent and later tokens, and no other family's.
    let spent = refresh_record(&acc, &fam(3), now + HOUR);
    let unspent = refresh_record(&acc, &fam(3), now + HOUR);
    let other = refresh_record(&acc, &fam(4), now + HOUR);
    for r in [&spent, &unspent, &other] {
        s.put_refresh(r).await.expect("put_refresh");
    }
    assert_eq!(
        s.use_refresh(&spent.hash, now).await.unwrap(),
        RefreshUse::Fresh(spent.clone())
    );
    s.revoke_family(&fam(3), now + HOUR)
        .await
        .expect("revoke_family");
    assert_eq!(
        s.use_refresh(&unspent.hash, now).await.unwrap(),
        RefreshUse::Unknown,
        "an unspent token of a revoked family"
    );
    assert_eq!(
        s.use_refresh(&spent.hash, now).await.unwrap(),
        RefreshUse::Unknown,
        "a spent token of a revoked family"
    );
    let later = refresh_record(&acc, &fam(3), now + HOUR);
    s.put_refresh(&later).await.expect("put_refresh");
    assert_eq!(
        s.use_refresh(&later.hash, now).await.unwrap(),
        RefreshUse::Unknown,
        "a token issued in a family after its revocation"
    );
    assert_eq!(
        s.use_refresh(&other.hash, now).await.unwrap(),
        RefreshUse::Fresh(other.clone()),
        "another family is untouched by the revocation"
    );

    // A revocation lasts until its `until`: one that ended before `now` revokes nothing.
    let ended = refresh_record(&acc, &fam(5), now + HOUR);
    s.put_refresh(&ended).await.expect("put_refresh");
    s.revoke_family(&fam(5), now - MINUTE)
        .await
        .expect("revoke_family");
    assert_eq!(
        s.use_refresh(&ended.hash, now).await.unwrap(),
        RefreshUse::Fresh(ended.clone()),
        "a token of a family whose revocation ended (until = now - 1 min) before now"
    );

    // Concurrent uses of one token (use i at `now + i`): exactly one is Fresh, the others
    // see it spent at the `now` of the one that was Fresh.
    for round in 0..6 {
        let r = refresh_record(&acc, &fam(10 + round), now + HOUR);
        s.put_refresh(&r).await.expect("put_refresh");
        let got = if round % 2 == 0 {
            let (a, b) = tokio::join!(s.use_refresh(&r.hash, now), s.use_refresh(&r.hash, now + 1));
            vec![a.unwrap(), b.unwrap()]
        } else {
            let (a, b, c) = tokio::join!(
                s.use_refresh(&r.hash, now),
                s.use_refresh(&r.hash, now + 1),
                s.use_refresh(&r.hash, now + 2)
            );
            vec![a.unwrap(), b.unwrap(), c.unwrap()]
        };
        let fresh: Vec<usize> = (0..got.len())
            .filter(|&i| got[i] == RefreshUse::Fresh(r.clone()))
            .collect();
        assert_eq!(
            fresh.len(),
            1,
            "round {round}: {} concurrent uses of one token: exactly one Fresh; got {got:?}",
            got.len()
        );
        let spent_at = now + fresh[0] as u64;
        for (i, u) in got.iter().enumerate() {
            if i != fresh[0] {
                assert_eq!(
                    *u,
                    RefreshUse::Reused(r.clone(), spent_at),
                    "round {round}: use {i} is Reused at the Fresh use's time; got {got:?}"
                );
            }
        }
    }

    // Expiry is judged against the `now` the caller passes. Last, because a store may prune
    // by that `now`, and the clock does not run backwards.
    let before_expiry = refresh_record(&acc, &fam(2), now + HOUR);
    let at_expiry = refresh_record(&acc, &fam(2), now + HOUR);
    let after_expiry = refresh_record(&acc, &fam(2), now + HOUR);
    for r in [&before_expiry, &at_expiry, &after_expiry] {
        s.put_refresh(r).await.expect("put_refresh");
    }
    assert_eq!(
        s.use_refresh(&before_expiry.hash, before_expiry.expires_at - 1)
            .await
            .unwrap(),
        RefreshUse::Fresh(before_expiry.clone()),
        "used a millisecond before its expiry"
    );
    assert_eq!(
        s.use_refresh(&at_expiry.hash, at_expiry.expires_at)
            .await
            .unwrap(),
        RefreshUse::Unknown,
        "used at its expiry (expires_at == now)"
    );
    assert_eq!(
        s.use_refresh(&after_expiry.hash, after_expiry.expires_at + DAY)
            .await
            .unwrap(),
        RefreshUse::Unknown,
        "used a day after its expiry"
    );
}
