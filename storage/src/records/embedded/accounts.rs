//! [`AccountStore`] in redb: accounts, their unique emails, external identities, refresh
//! tokens, and pruning expired tokens and revocations.

use redb::{ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};
use wagu_proto::model::UnixMillis;
use wagu_proto::records::AccountId;

use super::rows::{from_json, get_json, to_json};
use super::schema::{
    ACCOUNTS, ACCOUNTS_BY_EMAIL, IDENTITIES, REFRESH, REFRESH_BY_EXPIRY, REVOKED, REVOKED_BY_UNTIL,
};
use super::{EmbeddedRecords, OrEmbedded, PRUNE_BATCH, PRUNE_GRACE_MS};
use crate::records::{AccountRecord, AccountStore, RecordError, RefreshRecord, RefreshUse, Result};

#[derive(Serialize, Deserialize)]
pub(super) struct StoredRefresh {
    record: RefreshRecord,
    used: bool,
    /// The `now` of the use that spent it (absent in files written before it was recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    used_at: Option<UnixMillis>,
}

impl StoredRefresh {
    /// What a use finds when the token is already spent: when, or 0 (long ago) if unrecorded.
    fn reused(self) -> RefreshUse {
        let at = self.used_at.unwrap_or(0);
        RefreshUse::Reused(self.record, at)
    }
}

/// The token under `hash` if a use at `now` can find it: stored, unexpired, its family not
/// revoked. Spent or not: the caller looks at `used`.
pub(super) fn live_token(
    tokens: &impl ReadableTable<&'static str, &'static [u8]>,
    revoked: &impl ReadableTable<&'static str, u64>,
    hash: &str,
    now: UnixMillis,
) -> Result<Option<StoredRefresh>> {
    let Some(t) = get_json::<StoredRefresh>(tokens, hash)? else {
        return Ok(None);
    };
    if t.record.expires_at <= now {
        return Ok(None);
    }
    let revoked_until = revoked
        .get(t.record.family.as_str())
        .redb()?
        .map(|v| v.value());
    if revoked_until.is_some_and(|until| until > now) {
        return Ok(None);
    }
    Ok(Some(t))
}

impl AccountStore for EmbeddedRecords {
    async fn create_account(&self, a: &AccountRecord) -> Result<()> {
        let json = to_json(a)?;
        let (id, email) = (a.id.0.clone(), a.email.clone());
        self.write(move |w| {
            let mut by_email = w.open_table(ACCOUNTS_BY_EMAIL).redb()?;
            if by_email.get(email.as_str()).redb()?.is_some() {
                return Err(RecordError::Taken("email"));
            }
            let mut accounts = w.open_table(ACCOUNTS).redb()?;
            // 128 random bits do not collide; if they ever did, the older account keeps its id.
            if accounts.get(id.as_str()).redb()?.is_some() {
                return Err(RecordError::Taken("account id"));
            }
            by_email.insert(email.as_str(), id.as_str()).redb()?;
            accounts.insert(id.as_str(), json.as_slice()).redb()?;
            Ok(())
        })
        .await
    }

    async fn account(&self, id: &AccountId) -> Result<Option<AccountRecord>> {
        let id = id.0.clone();
        self.read(move |r| get_json(&r.open_table(ACCOUNTS).redb()?, &id))
            .await
    }

    async fn account_by_email(&self, email: &str) -> Result<Option<AccountRecord>> {
        let email = email.to_string();
        self.read(move |r| {
            let id = r
                .open_table(ACCOUNTS_BY_EMAIL)
                .redb()?
                .get(email.as_str())
                .redb()?
                .map(|v| v.value().to_string());
            match id {
                Some(id) => get_json(&r.open_table(ACCOUNTS).redb()?, &id),
                None => Ok(None),
            }
        })
        .await
    }

    async fn account_by_identity(
        &self,
        provider: &str,
        subject: &str,
    ) -> Result<Option<AccountRecord>> {
        let (provider, subject) = (provider.to_string(), subject.to_string());
        self.read(move |r| {
            let id = r
                .open_table(IDENTITIES)
                .redb()?
                .get((provider.as_str(), subject.as_str()))
                .redb()?
                .map(|v| v.value().to_string());
            match id {
                Some(id) => get_json(&r.open_table(ACCOUNTS).redb()?, &id),
                None => Ok(None),
            }
        })
        .await
    }

    async fn create_account_for_identity(
        &self,
        a: &AccountRecord,
        provider: &str,
        subject: &str,
    ) -> Result<AccountRecord> {
        let json = to_json(a)?;
        let account = a.clone();
        let (provider, subject) = (provider.to_string(), subject.to_string());
        // One write transaction: of two concurrent first log-ins the second finds the first's
        // link (write transactions run one at a time) and creates nothing.
        self.write(move |w| {
            let mut identities = w.open_table(IDENTITIES).redb()?;
            let key = (provider.as_str(), subject.as_str());
            let linked = identities.get(key).redb()?.map(|v| v.value().to_string());
            let mut accounts = w.open_table(ACCOUNTS).redb()?;
            if let Some(id) = linked {
                // Both rows are written in one transaction, so the account is there.
                return get_json(&accounts, &id)?.ok_or_else(|| {
                    RecordError::embedded(format!(
                        "identity ({provider}, {subject}) links to missing account {id}"
                    ))
                });
            }
            if accounts.get(account.id.as_str()).redb()?.is_some() {
                return Err(RecordError::Taken("account id"));
            }
            // No `accounts_by_email` entry: the email of an external identity is not a login.
            accounts
                .insert(account.id.as_str(), json.as_slice())
                .redb()?;
            identities.insert(key, account.id.as_str()).redb()?;
            Ok(account)
        })
        .await
    }

    async fn put_refresh(&self, rec: &RefreshRecord) -> Result<()> {
        let (hash, expires_at) = (rec.hash.clone(), rec.expires_at);
        let json = to_json(&StoredRefresh {
            record: rec.clone(),
            used: false,
            used_at: None,
        })?;
        self.write(move |w| {
            let mut tokens = w.open_table(REFRESH).redb()?;
            let mut by_expiry = w.open_table(REFRESH_BY_EXPIRY).redb()?;
            let old: Option<StoredRefresh> = tokens
                .insert(hash.as_str(), json.as_slice())
                .redb()?
                .map(|v| from_json(v.value()))
                .transpose()?;
            if let Some(old) = old {
                by_expiry
                    .remove((old.record.expires_at, hash.as_str()))
                    .redb()?;
            }
            by_expiry.insert((expires_at, hash.as_str()), ()).redb()?;
            Ok(())
        })
        .await
    }

    async fn use_refresh(&self, hash: &str, now: UnixMillis) -> Result<RefreshUse> {
        // First on a read snapshot, which waits for no writer: a token that is unknown,
        // expired, revoked or already spent is answered without a write transaction (a
        // spent token never becomes unspent, so the snapshot's "spent" is final).
        let key = hash.to_string();
        let seen = self
            .read(move |r| {
                let tokens = r.open_table(REFRESH).redb()?;
                let revoked = r.open_table(REVOKED).redb()?;
                live_token(&tokens, &revoked, &key, now)
            })
            .await?;
        match seen {
            None => return Ok(RefreshUse::Unknown),
            Some(t) if t.used => return Ok(t.reused()),
            Some(_) => {}
        }
        // Live and unspent on the snapshot: spend it in one write transaction, checking again
        // inside it. redb runs write transactions one at a time, so of two concurrent uses
        // the second sees the first one's `used = true` (and its `used_at`).
        let hash = hash.to_string();
        self.write(move |w| {
            prune_refresh(w, now)?;
            let mut tokens = w.open_table(REFRESH).redb()?;
            let revoked = w.open_table(REVOKED).redb()?;
            let Some(mut t) = live_token(&tokens, &revoked, &hash, now)? else {
                // Revoked since the snapshot.
                return Ok(RefreshUse::Unknown);
            };
            if t.used {
                return Ok(t.reused());
            }
            t.used = true;
            t.used_at = Some(now);
            tokens
                .insert(hash.as_str(), to_json(&t)?.as_slice())
                .redb()?;
            Ok(RefreshUse::Fresh(t.record))
        })
        .await
    }

    async fn revoke_family(&self, family: &str, until: UnixMillis) -> Result<()> {
        let family = family.to_string();
        self.write(move |w| {
            let mut revoked = w.open_table(REVOKED).redb()?;
            let mut by_until = w.open_table(REVOKED_BY_UNTIL).redb()?;
            let old = revoked.get(family.as_str()).redb()?.map(|v| v.value());
            // A second revocation can lengthen one, never cut it short.
            let until = old.map_or(until, |o| o.max(until));
            if let Some(old) = old {
                by_until.remove((old, family.as_str())).redb()?;
            }
            revoked.insert(family.as_str(), until).redb()?;
            by_until.insert((until, family.as_str()), ()).redb()?;
            Ok(())
        })
        .await
    }
}

/// Removes a batch of tokens expired, and of revocations ended, more than
/// [`PRUNE_GRACE_MS`] before `now`: rows that can only ever answer `Unknown` (or revoke
/// nothing). The CQL backend gets the same from TTLs.
pub(super) fn prune_refresh(w: &WriteTransaction, now: UnixMillis) -> Result<()> {
    let cutoff = now.saturating_sub(PRUNE_GRACE_MS);
    {
        let mut by_expiry = w.open_table(REFRESH_BY_EXPIRY).redb()?;
        let expired = by_expiry
            .range(..(cutoff, ""))
            .redb()?
            .take(PRUNE_BATCH)
            .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_string())))
            .collect::<Result<Vec<_>, _>>()
            .redb()?;
        if !expired.is_empty() {
            let mut tokens = w.open_table(REFRESH).redb()?;
            for (at, hash) in &expired {
                by_expiry.remove((*at, hash.as_str())).redb()?;
                tokens.remove(hash.as_str()).redb()?;
            }
        }
    }
    let mut by_until = w.open_table(REVOKED_BY_UNTIL).redb()?;
    let ended = by_until
        .range(..(cutoff, ""))
        .redb()?
        .take(PRUNE_BATCH)
        .map(|e| e.map(|(k, _)| (k.value().0, k.value().1.to_string())))
        .collect::<Result<Vec<_>, _>>()
        .redb()?;
    if !ended.is_empty() {
        let mut revoked = w.open_table(REVOKED).redb()?;
        for (at, family) in &ended {
            by_until.remove((*at, family.as_str())).redb()?;
            revoked.remove(family.as_str()).redb()?;
        }
    }
    Ok(())
}
