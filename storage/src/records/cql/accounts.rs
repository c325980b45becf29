//! [`AccountStore`] over CQL: accounts, their unique emails, external identities and refresh
//! tokens.
//!
//! Accounts of an external identity: `create_account_for_identity` claims the identity first
//! (an LWT storing the new account's id), then writes the `accounts` row. A concurrent first
//! log-in that loses the claim reads the winner's id from the LWT's answer and returns that
//! account, polling briefly while the winner's row is not written yet. If it still is not (the
//! winner failed between its claim and its row), the loser writes its own record under the
//! claimed id, so a failed first log-in never leaves an identity linked to nothing. The
//! account's email is not claimed in `accounts_by_email`.

use std::time::Duration;

use wagu_proto::model::UnixMillis;
use wagu_proto::records::AccountId;

use super::CqlRecords;
use super::rows::{account_of, big, spent_at};
use super::writes::ttl_secs;
use crate::records::{
    AccountRecord, AccountStore, RecordError, RefreshRecord, RefreshUse, Result, now_millis,
};

/// How long a first log-in that lost the claim of an identity waits for the winner to write
/// its account row before writing it itself.
const IDENTITY_POLLS: u32 = 5;
const IDENTITY_POLL_INTERVAL: Duration = Duration::from_millis(100);

impl AccountStore for CqlRecords {
    async fn create_account(&self, a: &AccountRecord) -> Result<()> {
        let owner = self
            .one(&self.st.claim_email, (&a.email, a.id.as_str()), |c| {
                Ok((c.get::<bool>("[applied]")?, c.opt::<String>("id")?))
            })
            .await?
            .ok_or_else(|| RecordError::cql_row("an LWT returned no row"))?;
        match owner {
            (true, _) => {}
            // Our own earlier attempt (a retry after a timeout) claimed it: carry on.
            (false, Some(id)) if id == a.id.0 => {}
            (false, _) => return Err(RecordError::Taken("email")),
        }
        let written = self
            .exec(
                &self.st.insert_account,
                (
                    a.id.as_str(),
                    &a.email,
                    &a.display_name,
                    &a.password_hash,
                    big(a.created_at),
                ),
            )
            .await;
        if let Err(e) = written {
            // Give the email back, so the user can sign up again; only if it is still ours.
            let _ = self
                .exec(&self.st.release_email, (&a.email, a.id.as_str()))
                .await;
            return Err(e);
        }
        Ok(())
    }

    async fn account(&self, id: &AccountId) -> Result<Option<AccountRecord>> {
        self.one(&self.st.account, (id.as_str(),), account_of).await
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>> {
        let id = self
            .one(&self.st.email, (email,), |c| c.get::<String>("id"))
            .await?;
        match id {
            // A claimed email whose account row is missing (its creation failed) has no account.
            Some(id) => self.account(&AccountId(id)).await,
            None => Ok(None),
        }
    }

    async fn account_by_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<AccountRecord>> {
        let id = self
            .one(&self.st.identity, (provider, subject), |c| {
                c.get::<String>("account")
            })
            .await?;
        match id {
            // Claimed, its account row not written yet (a first log-in in progress): none.
            Some(id) => self.account(&AccountId(id)).await,
            None => Ok(None),
        }
    }

    async fn create_account_for_identity(
        &self,
        a: &AccountRecord,
        provider: &str,
        subject: &str,
    ) -> Result<AccountRecord> {
        // The claim decides between concurrent first log-ins: one LWT applies, the others
        // are told the winner's account id.
        let (applied, linked) = self
            .one(
                &self.st.claim_identity,
                (provider, subject, a.id.as_str()),
                |c| Ok((c.get::<bool>("[applied]")?, c.opt::<String>("account")?)),
            )
            .await?
            .ok_or_else(|| RecordError::cql_row("an LWT returned no row"))?;
        let account = match (applied, linked) {
            (true, _) => a.clone(),
            // Our own earlier attempt (a retry after a timeout) claimed it: carry on.
            (false, Some(id)) if id == a.id.0 => a.clone(),
            (false, Some(id)) => {
                let id = AccountId(id);
                for attempt in 0..=IDENTITY_POLLS {
                    if let Some(linked) = self.account(&id).await? {
                        return Ok(linked);
                    }
                    if attempt < IDENTITY_POLLS {
                        tokio::time::sleep(IDENTITY_POLL_INTERVAL).await;
                    }
                }
                // The winner has not written its row: it failed after its claim (or is
                // stalled). Write this log-in's record under the claimed id; should the winner
                // still write, its row replaces this one, either being the identity's account.
                AccountRecord { id, ..a.clone() }
            }
            (false, None) => {
                return Err(RecordError::cql_row(
                    "a claim of an identity that did not apply returned no account",
                ));
            }
        };
        // No `accounts_by_email` claim: the email of an external identity is not a login.
        self.exec(
            &self.st.insert_account,
            (
                account.id.as_str(),
                &account.email,
                &account.display_name,
                &account.password_hash,
                big(account.created_at),
            ),
        )
        .await?;
        Ok(account)
    }

    async fn put_refresh(&self, r: &RefreshRecord) -> Result<()> {
        self.exec(
            &self.st.insert_refresh,
            (
                &r.hash,
                r.account.as_str(),
                &r.family,
                big(r.expires_at),
                ttl_secs(r.expires_at, now_millis()),
            ),
        )
        .await?;
        Ok(())
    }

    async fn use_refresh(&self, hash: &str, now: UnixMillis) -> Result<RefreshUse> {
        // Reads first: a token that is unknown, expired, revoked or already spent is answered
        // without a write (and without a Paxos round).
        let found = self
            .one(&self.st.refresh, (hash,), |c| {
                let rec = RefreshRecord {
                    hash: c.get("hash")?,
                    account: AccountId(c.get("account")?),
                    family: c.get("family")?,
                    expires_at: c.millis("expires_at")?,
                };
                let used = c.opt::<bool>("used")?.unwrap_or(false);
                Ok((rec, used, c.opt::<i64>("used_at")?))
            })
            .await?;
        let Some((rec, used, used_at)) = found else {
            return Ok(RefreshUse::Unknown);
        };
        if rec.expires_at <= now {
            return Ok(RefreshUse::Unknown);
        }
        let revoked = self
            .one(&self.st.revoked, (&rec.family,), |_| Ok(()))
            .await?;
        if revoked.is_some() {
            return Ok(RefreshUse::Unknown);
        }
        // `used` only ever goes from false to true, through the compare-and-set below, and a
        // read sees only committed compare-and-sets: "spent" here is final.
        if used {
            return Ok(RefreshUse::Reused(rec, spent_at(used_at)));
        }
        // The compare-and-set decides between concurrent uses: exactly one sees `used = false`
        // and records its `now` as `used_at`.
        let outcome = self
            .one(
                &self.st.spend_refresh,
                (ttl_secs(rec.expires_at, now), big(now), hash),
                |c| Ok((c.get::<bool>("[applied]")?, c.opt::<bool>("used")?)),
            )
            .await?
            .ok_or_else(|| RecordError::cql_row("an LWT returned no row"))?;
        match outcome {
            (true, _) => Ok(RefreshUse::Fresh(rec)),
            // An LWT that did not apply returns only the column of its condition: read when
            // the winner spent it.
            (false, Some(true)) => {
                let row = self
                    .one(&self.st.refresh_used_at, (hash,), |c| {
                        c.opt::<i64>("used_at")
                    })
                    .await?;
                Ok(match row {
                    Some(at) => RefreshUse::Reused(rec, spent_at(at)),
                    // Expired in between.
                    None => RefreshUse::Unknown,
                })
            }
            // The row expired between the read and the update.
            (false, _) => Ok(RefreshUse::Unknown),
        }
    }

    async fn revoke_family(&self, family: &str, until: UnixMillis) -> Result<()> {
        // A revocation that has already ended revokes nothing (a TTL cannot be zero, so
        // writing it would revoke for a second).
        let now = now_millis();
        if until <= now {
            return Ok(());
        }
        self.exec(&self.st.revoke, (family, ttl_secs(until, now)))
            .await?;
        Ok(())
    }
}
