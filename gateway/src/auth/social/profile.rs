//! Who logged in, read out of a provider's JSON — an ID token's verified claims (`oidc`) or
//! the profile API's answer (`oauth2`) — with the provider's [`ProfileMapping`] of JSON
//! pointers. Both kinds produce the same [`Identity`].
//!
//! What it does not do: verify anything (the caller hands over only JSON it has verified or
//! fetched with its own access token).

use super::SocialError;
use super::presets::ProfileMapping;
use serde_json::Value;

/// Longest subject kept (the provider's user id; Google's and Kakao's are ~20 digits).
pub const MAX_SUBJECT_BYTES: usize = 255;
/// Longest picture URL kept.
pub const MAX_PICTURE_BYTES: usize = 2048;

/// Who the provider says logged in.
#[derive(Debug, Clone, PartialEq)]
pub struct Identity {
    /// The provider's stable id for the person.
    pub subject: String,
    /// Only when the provider did not mark it unverified.
    pub email: Option<String>,
    pub name: Option<String>,
    /// The profile image URL (http or https).
    pub picture: Option<String>,
}

fn text(v: &Value, pointer: Option<&str>) -> Option<String> {
    match v.pointer(pointer?)? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn truth(v: &Value, pointer: Option<&str>) -> Option<bool> {
    match v.pointer(pointer?)? {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

impl Identity {
    /// The identity in `v`; a missing or unusable subject is an error (nothing else is).
    pub fn read(v: &Value, m: &ProfileMapping) -> Result<Identity, SocialError> {
        let subject = text(v, Some(&m.subject))
            .filter(|s| s.len() <= MAX_SUBJECT_BYTES && !s.chars().any(char::is_control))
            .ok_or_else(|| {
                SocialError::Failed(format!("no usable subject at {} in {v:.300}", m.subject))
            })?;
        let email = text(v, m.email.as_deref())
            // An address the provider marks unverified is not the person's to claim.
            .filter(|_| truth(v, m.email_verified.as_deref()) != Some(false));
        let picture = text(v, m.picture.as_deref()).filter(|p| {
            p.len() <= MAX_PICTURE_BYTES && (p.starts_with("https://") || p.starts_with("http://"))
        });
        Ok(Identity {
            subject,
            email,
            name: text(v, m.name.as_deref()),
            picture,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn naver() -> ProfileMapping {
        ProfileMapping {
            subject: "/response/id".into(),
            name: Some("/response/nickname".into()),
            email: Some("/response/email".into()),
            email_verified: None,
            picture: Some("/response/profile_image".into()),
        }
    }

    #[test]
    fn a_naver_profile_maps_to_an_identity() {
        let v = json!({"resultcode":"00","message":"success","response":{
            "id":"32742776","nickname":"OpenAPI","email":"openapi@naver.com",
            "profile_image":"https://ssl.pstatic.net/static/pwe/address/nodata_33x33.gif"}});
        assert_eq!(
            Identity::read(&v, &naver()).unwrap(),
            Identity {
                subject: "32742776".into(),
                email: Some("openapi@naver.com".into()),
                name: Some("OpenAPI".into()),
                picture: Some("https://ssl.pstatic.net/static/pwe/address/nodata_33x33.gif".into()),
            }
        );
    }

    #[test]
    fn an_error_answer_without_a_subject_is_refused() {
        let v = json!({"resultcode":"024","message":"Authentication failed"});
        assert!(matches!(
            Identity::read(&v, &naver()),
            Err(SocialError::Failed(_))
        ));
    }

    #[test]
    fn an_unverified_email_and_a_non_http_picture_are_dropped() {
        let m = ProfileMapping {
            subject: "/sub".into(),
            name: Some("/name".into()),
            email: Some("/email".into()),
            email_verified: Some("/email_verified".into()),
            picture: Some("/picture".into()),
        };
        let v = json!({"sub": 12345, "email": "a@b.c", "email_verified": "false",
            "picture": "javascript:alert(1)", "name": "  "});
        let who = Identity::read(&v, &m).unwrap();
        assert_eq!(who.subject, "12345");
        assert_eq!((who.email, who.picture, who.name), (None, None, None));
    }
}
