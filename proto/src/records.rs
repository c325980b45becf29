//! The durable records of the REST API: accounts, places (restaurants) and posts (visit
//! reviews), with the limits every field must respect.
//!
//! What it does: defines the JSON shapes the gateway serves under `/api/…` and the storage
//! crate persists, and checks them ([`PostDraft::validate`], [`Place::validate`]). The same
//! types derive an OpenAPI schema (utoipa) so the document cannot drift from the code.
//!
//! What it does not do: storage, authorisation ("author only" is the gateway's rule), or
//! normalisation for search (the storage crate's `records::text`).

use crate::ids::PlaceId;
use crate::model::{LatLng, UnixMillis};
use serde::{Deserialize, Serialize};
use std::fmt;
use utoipa::ToSchema;

/// Display names of accounts: 1 to 40 characters after trimming (the room name limit).
pub const MAX_DISPLAY_NAME_CHARS: usize = crate::limits::MAX_NAME_CHARS;
/// Emails: at most 254 bytes (RFC 5321's path limit).
pub const MAX_EMAIL_BYTES: usize = 254;
/// Passwords: 8 to 128 characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
pub const MAX_PASSWORD_CHARS: usize = 128;
/// Place names: 1 to 200 characters.
pub const MAX_PLACE_NAME_CHARS: usize = crate::limits::MAX_PLACE_NAME_CHARS;
/// Place category, phone and hours: up to 100 characters each.
pub const MAX_PLACE_FIELD_CHARS: usize = 100;
/// Place addresses: up to 300 characters.
pub const MAX_ADDRESS_CHARS: usize = 300;
/// Post text: up to 5,000 characters.
pub const MAX_POST_TEXT_CHARS: usize = 5_000;
/// Menu items per post.
pub const MAX_MENU_ITEMS: usize = 30;
/// Menu item names: 1 to 100 characters.
pub const MAX_MENU_NAME_CHARS: usize = 100;
/// Photos per post.
pub const MAX_PHOTOS: usize = 10;
/// Photo ids: 1 to 64 bytes of `[A-Za-z0-9_-]`.
pub const MAX_PHOTO_ID_BYTES: usize = 64;
/// Idempotency keys: 1 to 64 bytes of printable ASCII.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 64;
/// A menu price (in the currency's smallest unit) above this is a typo, not a dinner.
pub const MAX_PRICE: u64 = 100_000_000_000;
/// Page sizes of every listing: 1 to 100, 20 when not given.
pub const MAX_PAGE: usize = 100;
pub const DEFAULT_PAGE: usize = 20;

macro_rules! string_id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(
            Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug, Serialize, Deserialize, ToSchema,
            schemars::JsonSchema,
        )]
        #[serde(transparent)]
        pub struct $name(pub String);
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// An account: 22 characters of URL-safe base64 (128 random bits), chosen by the server.
    AccountId
);
string_id!(
    /// A post: 22 characters of URL-safe base64 (128 random bits), chosen by the server.
    PostId
);
string_id!(
    /// A photo stored by the photos service (the photos issue); posts refer to them by id.
    PhotoId
);

/// An invalid field: the message names the field and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidRecord(pub String);

fn invalid(msg: impl Into<String>) -> InvalidRecord {
    InvalidRecord(msg.into())
}

/// A public view of an account.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Account {
    pub id: AccountId,
    pub display_name: String,
    pub created_at: UnixMillis,
}

/// A restaurant (or any place worth a visit).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Place {
    pub id: PlaceId,
    pub name: String,
    /// Free text such as `korean`, `bbq`, `cafe`.
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub address: String,
    pub location: LatLng,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// Opening hours as the source gave them (OpenStreetMap `opening_hours` syntax or prose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hours: Option<String>,
}

impl Place {
    /// Checks every field; trims nothing (callers trim before).
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        crate::client::check_place_id(&self.id).map_err(|e| invalid(e.message))?;
        chars_between("name", &self.name, 1, MAX_PLACE_NAME_CHARS)?;
        chars_between("category", &self.category, 0, MAX_PLACE_FIELD_CHARS)?;
        chars_between("address", &self.address, 0, MAX_ADDRESS_CHARS)?;
        if let Some(p) = &self.phone {
            chars_between("phone", p, 1, MAX_PLACE_FIELD_CHARS)?;
        }
        if let Some(h) = &self.hours {
            chars_between("hours", h, 1, MAX_PLACE_FIELD_CHARS)?;
        }
        if !self.location.is_valid() {
            return Err(invalid(
                "location must have lat within ±90 and lng within ±180",
            ));
        }
        Ok(())
    }
}

/// Who wrote a post's text.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum TextOrigin {
    /// Written by the author.
    #[default]
    Author,
    /// Drafted by the AI and kept as drafted.
    AiDraft,
    /// Drafted by the AI, then edited by the author.
    AiEdited,
    /// Drafted by the built-in template drafter (no language model: it only restates the
    /// place, menu, rating, keywords and photo facts the author gave) and kept as drafted. A
    /// template draft the author edited is `author`: no model wrote any of it.
    TemplateDraft,
}

impl TextOrigin {
    pub fn as_str(self) -> &'static str {
        match self {
            TextOrigin::Author => "author",
            TextOrigin::AiDraft => "ai_draft",
            TextOrigin::AiEdited => "ai_edited",
            TextOrigin::TemplateDraft => "template_draft",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "author" => TextOrigin::Author,
            "ai_draft" => TextOrigin::AiDraft,
            "ai_edited" => TextOrigin::AiEdited,
            "template_draft" => TextOrigin::TemplateDraft,
            _ => return None,
        })
    }
}

/// One dish of a visit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MenuItem {
    pub name: String,
    /// In the currency's smallest unit (won for KRW, cents for USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<u64>,
}

/// What an author writes: everything of a post the author controls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PostDraft {
    pub place_id: PlaceId,
    /// The day of the visit, `YYYY-MM-DD`.
    pub visit_date: String,
    #[serde(default)]
    pub menu: Vec<MenuItem>,
    /// 1 to 5.
    pub rating: u8,
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub photos: Vec<PhotoId>,
    #[serde(default)]
    pub text_origin: TextOrigin,
}

impl PostDraft {
    /// Checks every field. `today` (days since 1970-01-01, UTC) bounds the visit date: a visit
    /// may be dated at most one day ahead of UTC, for time zones east of it.
    pub fn validate(&self, today: i64) -> Result<(), InvalidRecord> {
        crate::client::check_place_id(&self.place_id).map_err(|e| invalid(e.message))?;
        let day = parse_date(&self.visit_date)
            .ok_or_else(|| invalid("visit_date must be a date written YYYY-MM-DD"))?;
        if day > today + 1 {
            return Err(invalid("visit_date is in the future"));
        }
        if day < 0 {
            return Err(invalid("visit_date must be 1970-01-01 or later"));
        }
        if !(1..=5).contains(&self.rating) {
            return Err(invalid("rating must be 1 to 5"));
        }
        chars_between("text", &self.text, 0, MAX_POST_TEXT_CHARS)?;
        check_menu(&self.menu)?;
        check_photo_ids(&self.photos)?;
        if self.text_origin != TextOrigin::Author && self.text.trim().is_empty() {
            return Err(invalid(
                "a drafted post (text_origin other than author) needs its text",
            ));
        }
        Ok(())
    }
}

/// The menu rules of a post (and of a draft request): at most [`MAX_MENU_ITEMS`] items, each
/// named in 1 to [`MAX_MENU_NAME_CHARS`] characters, prices at most [`MAX_PRICE`].
pub fn check_menu(menu: &[MenuItem]) -> Result<(), InvalidRecord> {
    if menu.len() > MAX_MENU_ITEMS {
        return Err(invalid(format!(
            "menu may list at most {MAX_MENU_ITEMS} items"
        )));
    }
    for m in menu {
        chars_between("menu[].name", &m.name, 1, MAX_MENU_NAME_CHARS)?;
        if m.price.is_some_and(|p| p > MAX_PRICE) {
            return Err(invalid(format!("menu[].price must be at most {MAX_PRICE}")));
        }
    }
    Ok(())
}

/// The photo rules of a post (and of a draft request): at most [`MAX_PHOTOS`] ids, each 1 to
/// [`MAX_PHOTO_ID_BYTES`] characters of `[A-Za-z0-9_-]`.
pub fn check_photo_ids(photos: &[PhotoId]) -> Result<(), InvalidRecord> {
    if photos.len() > MAX_PHOTOS {
        return Err(invalid(format!(
            "photos[] may hold at most {MAX_PHOTOS} ids"
        )));
    }
    for p in photos {
        let ok = !p.0.is_empty()
            && p.0.len() <= MAX_PHOTO_ID_BYTES
            && p.0
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(invalid(format!(
                "photos[] must be 1 to {MAX_PHOTO_ID_BYTES} characters of [A-Za-z0-9_-]"
            )));
        }
    }
    Ok(())
}

/// A published post.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Post {
    pub id: PostId,
    pub author: AccountId,
    /// The author's display name when the post was written or last edited.
    pub author_name: String,
    /// The place's name and location, copied when the post was written: feeds show them
    /// without a second read, and "near me" finds the post where the place is.
    pub place_name: String,
    pub location: LatLng,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    #[serde(flatten)]
    pub draft: PostDraft,
}

/// A page of a listing, newest (or first) first. `next` is an opaque cursor: pass it back as
/// `cursor` for the following page; absent on the last page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Page<T> {
    pub items: Vec<T>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

/// Checks an idempotency key: 1 to 64 printable ASCII characters.
pub fn check_idempotency_key(k: &str) -> Result<(), InvalidRecord> {
    if k.is_empty()
        || k.len() > MAX_IDEMPOTENCY_KEY_BYTES
        || !k.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(invalid(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY_BYTES} printable ASCII characters"
        )));
    }
    Ok(())
}

fn chars_between(field: &str, s: &str, min: usize, max: usize) -> Result<(), InvalidRecord> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(invalid(if min == 0 {
            format!("{field} must be at most {max} characters")
        } else {
            format!("{field} must be {min} to {max} characters")
        }));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(invalid(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// `YYYY-MM-DD` → days since 1970-01-01 (proleptic Gregorian), `None` if not a real date.
pub fn parse_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = &s[r];
        t.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| t.parse().ok())
            .flatten()
    };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days_in = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > days_in[(m - 1) as usize] {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Howard Hinnant's `days_from_civil`: exact for every proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_parse_exactly() {
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("2000-03-01"), Some(11_017));
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("2023-02-29"), None);
        assert_eq!(parse_date("2023-13-01"), None);
        assert_eq!(parse_date("2023-1-01"), None);
        assert_eq!(parse_date("+023-01-01"), None);
        assert_eq!(parse_date("2023-01-32"), None);
    }

    fn draft() -> PostDraft {
        PostDraft {
            place_id: PlaceId("p1".into()),
            visit_date: "2026-11-20".into(),
            menu: vec![MenuItem {
                name: "냉면".into(),
                price: Some(14_000),
            }],
            rating: 5,
            text: "좋아요".into(),
            photos: vec![PhotoId("ph_1".into())],
            text_origin: TextOrigin::Author,
        }
    }

    #[test]
    fn drafts_are_checked_field_by_field() {
        let today = parse_date("2026-11-25").unwrap();
        assert!(draft().validate(today).is_ok());
        let bad = |f: fn(&mut PostDraft), needle: &str| {
            let mut d = draft();
            f(&mut d);
            let e = d.validate(today).unwrap_err().0;
            assert!(e.contains(needle), "{e} should mention {needle}");
        };
        bad(|d| d.rating = 0, "rating");
        bad(|d| d.rating = 6, "rating");
        bad(|d| d.visit_date = "2026-11-27".into(), "future");
        bad(|d| d.visit_date = "yesterday".into(), "visit_date");
        bad(|d| d.text = "x".repeat(MAX_POST_TEXT_CHARS + 1), "text");
        bad(|d| d.menu[0].name = String::new(), "menu");
        bad(|d| d.menu[0].price = Some(MAX_PRICE + 1), "price");
        bad(|d| d.photos = vec![PhotoId("../etc".into())], "photos");
        bad(|d| d.place_id = PlaceId(String::new()), "place_id");
        bad(
            |d| {
                d.text_origin = TextOrigin::AiDraft;
                d.text = " ".into()
            },
            "drafted post",
        );
        bad(
            |d| {
                d.text_origin = TextOrigin::TemplateDraft;
                d.text = String::new()
            },
            "drafted post",
        );
        bad(|d| d.text = "a\u{0}b".into(), "control");
    }

    #[test]
    fn every_text_origin_round_trips_as_the_string_both_stores_keep() {
        for (o, s) in [
            (TextOrigin::Author, "author"),
            (TextOrigin::AiDraft, "ai_draft"),
            (TextOrigin::AiEdited, "ai_edited"),
            (TextOrigin::TemplateDraft, "template_draft"),
        ] {
            assert_eq!(o.as_str(), s);
            assert_eq!(TextOrigin::parse(s), Some(o));
            // The embedded store keeps the post as JSON: serde must agree with as_str.
            assert_eq!(serde_json::to_value(o).unwrap(), serde_json::json!(s));
        }
        assert_eq!(TextOrigin::parse("template"), None);
    }
}
