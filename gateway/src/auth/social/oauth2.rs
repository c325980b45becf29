//! The OAuth 2.0 half of social log-in, for providers without OpenID Connect (Naver): after
//! the shared code redemption in [`super`], one `GET` of the profile API with the access token
//! as `Authorization: Bearer`, whose JSON the provider's mapping turns into an identity.
//!
//! What it does not do: keep or refresh the provider's access token (it is used once and
//! dropped), or call any other API of the provider.

use super::SocialError;
use serde_json::Value;

/// Largest profile answer read (Naver's is well under 1 KiB).
const MAX_PROFILE_BYTES: usize = 64 * 1024;

/// The profile JSON at `url` for `access_token`.
pub async fn profile(
    http: &reqwest::Client,
    url: &str,
    access_token: &str,
) -> Result<Value, SocialError> {
    let resp = http
        .get(url)
        .bearer_auth(access_token)
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| SocialError::Failed(format!("profile {url}: {e}")))?;
    let status = resp.status();
    let body = resp
        .bytes()
        .await
        .map_err(|e| SocialError::Failed(format!("profile {url}: {e}")))?;
    if body.len() > MAX_PROFILE_BYTES {
        return Err(SocialError::Failed(format!(
            "profile {url}: answer over {MAX_PROFILE_BYTES} bytes"
        )));
    }
    if !status.is_success() {
        let shown: String = String::from_utf8_lossy(&body).chars().take(300).collect();
        return Err(SocialError::Failed(format!(
            "profile {url} {status}: {shown}"
        )));
    }
    serde_json::from_slice(&body)
        .map_err(|e| SocialError::Failed(format!("profile {url}: not JSON: {e}")))
}
