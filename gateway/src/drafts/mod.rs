//! Review drafts: from the photos, place, menu items, rating and keywords of a visit, a draft
//! of the review text that the author keeps, edits or skips (`POST /api/drafts`).
//!
//! - [`Drafts`]: the service — validates the request, reads the author's photos through
//!   [`photos::DraftPhotos`], and drafts with the configured model ([`openai`], `source: "ai"`)
//!   or, with none configured (or when asked), the built-in [`template`] (`source: "template"`).
//! - [`DraftError`]: every way a draft fails, with the error it came from.
//!
//! What it does not do: store drafts (a draft lives only in the response; the post that keeps
//! it records `text_origin`), store photos, or check sign-in and rate limits (the HTTP layer,
//! `crate::http::drafts`).

pub mod openai;
pub mod photos;
pub mod prompt;
pub mod template;

use crate::config::DraftsConfig;
use crate::error::{ApiCode, HttpCode};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use openai::{ModelClient, ModelError, Piece};
use photos::{DraftPhotos, DraftPhotosError, PreparedPhoto};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use wagu_proto::ErrorCode;
use wagu_proto::PlaceId;
use wagu_proto::records::{
    AccountId, InvalidRecord, MenuItem, PhotoId, Place, TextOrigin, check_menu, check_photo_ids,
};

/// Keywords per draft request.
pub const MAX_KEYWORDS: usize = 10;
/// Characters per keyword (after trimming).
pub const MAX_KEYWORD_CHARS: usize = 30;

/// The language a draft is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Ko,
    En,
}

/// Which drafter writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum DrafterChoice {
    /// The model when one is configured, the template otherwise.
    #[default]
    Auto,
    /// The built-in template, even when a model is configured (say, after a model error).
    Template,
}

/// Where a draft's text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DraftSource {
    /// A language model wrote it.
    Ai,
    /// The built-in template drafter wrote it (no model).
    Template,
}

/// `POST /api/drafts`.
#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DraftRequest {
    pub place_id: PlaceId,
    /// Up to 10 of the author's own photo ids (the photos service's), in the order to show.
    #[serde(default)]
    pub photos: Vec<PhotoId>,
    /// Up to 30 dishes (the post's own menu rules).
    #[serde(default)]
    pub menu: Vec<MenuItem>,
    /// 1 to 5, when the author has chosen one.
    #[serde(default)]
    pub rating: Option<u8>,
    /// Up to 10 words or short phrases (1 to 30 characters each) the review should carry.
    #[serde(default)]
    pub keywords: Vec<String>,
    pub language: Language,
    /// Answer as Server-Sent Events (`text/event-stream`): `delta` events with text as it is
    /// written, then one `done` event with the whole draft (or one `error` event).
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub drafter: DrafterChoice,
}

impl DraftRequest {
    /// Trims what the author typed.
    pub fn tidy(mut self) -> Self {
        for m in &mut self.menu {
            m.name = m.name.trim().to_string();
        }
        for k in &mut self.keywords {
            *k = k.trim().to_string();
        }
        self
    }

    /// Checks every field (menu and photo ids by the post's own rules).
    pub fn validate(&self) -> Result<(), InvalidRecord> {
        wagu_proto::client::check_place_id(&self.place_id).map_err(|e| InvalidRecord(e.message))?;
        check_photo_ids(&self.photos)?;
        let mut seen = std::collections::HashSet::new();
        if !self.photos.iter().all(|p| seen.insert(p)) {
            return Err(InvalidRecord("photos[] must not repeat an id".into()));
        }
        check_menu(&self.menu)?;
        if self.rating.is_some_and(|r| !(1..=5).contains(&r)) {
            return Err(InvalidRecord("rating must be 1 to 5".into()));
        }
        if self.keywords.len() > MAX_KEYWORDS {
            return Err(InvalidRecord(format!("at most {MAX_KEYWORDS} keywords")));
        }
        for k in &self.keywords {
            let n = k.chars().count();
            if n == 0 || n > MAX_KEYWORD_CHARS || k.chars().any(char::is_control) {
                return Err(InvalidRecord(format!(
                    "keywords[] must be 1 to {MAX_KEYWORD_CHARS} characters without control \
                     characters"
                )));
            }
        }
        Ok(())
    }
}

/// A draft for the author to keep, edit or skip.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Draft {
    pub text: String,
    pub source: DraftSource,
    /// The configured model that wrote it (`source: "ai"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub language: Language,
    /// The post's `text_origin` if the author keeps the text as it is: `ai_draft` or
    /// `template_draft`.
    pub text_origin: TextOrigin,
    /// The post's `text_origin` once the author edits the text: `ai_edited` for a model's
    /// draft, `author` for a template's (no model wrote any of it).
    pub text_origin_if_edited: TextOrigin,
    /// The model stopped at its token limit (`drafts.max_completion_tokens`): the text may end
    /// mid-sentence.
    pub truncated: bool,
    /// How many photos the drafter used (sent to the model as images, or measured by the
    /// template).
    pub photos_used: usize,
}

/// Everything a drafter writes from.
#[derive(Clone, Debug)]
pub struct DraftInput {
    pub place: Place,
    pub menu: Vec<MenuItem>,
    pub rating: Option<u8>,
    pub keywords: Vec<String>,
    pub language: Language,
    pub photos: Vec<PreparedPhoto>,
}

/// Why there is no draft.
#[derive(Debug, thiserror::Error)]
pub enum DraftError {
    #[error(transparent)]
    Invalid(#[from] InvalidRecord),
    /// Not one of the author's photos (or none at all).
    #[error("photo {0} is not one of your photos")]
    UnknownPhoto(PhotoId),
    #[error(transparent)]
    Photos(#[from] DraftPhotosError),
    /// The photos service handed over something that is not a JPEG.
    #[error("photo {id} cannot be read: {source}")]
    PhotoUnreadable {
        id: PhotoId,
        #[source]
        source: image::ImageError,
    },
    #[error("streaming drafts is turned off on this server (drafts.stream)")]
    StreamingOff,
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("a photo task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
}

impl DraftError {
    /// The stable code clients see.
    pub fn code(&self) -> ApiCode {
        match self {
            DraftError::Invalid(_) => ErrorCode::Invalid.into(),
            DraftError::UnknownPhoto(_) => HttpCode::UnknownPhoto.into(),
            DraftError::Photos(_) => ErrorCode::Unavailable.into(),
            DraftError::PhotoUnreadable { .. } | DraftError::Task(_) => ErrorCode::Internal.into(),
            DraftError::StreamingOff => HttpCode::StreamingOff.into(),
            DraftError::Model(m) => match m {
                ModelError::Unreachable(_) => HttpCode::ModelUnreachable.into(),
                ModelError::Unavailable { .. } => HttpCode::ModelUnavailable.into(),
                ModelError::Timeout(_) => HttpCode::ModelTimeout.into(),
                ModelError::ImagesUnsupported(_) => HttpCode::ModelRejectsImages.into(),
                ModelError::Rejected { .. } => HttpCode::ModelError.into(),
                ModelError::BadAnswer(_) => HttpCode::ModelBadAnswer.into(),
            },
        }
    }
}

/// One event of a streamed draft.
pub enum DraftEvent {
    Delta(String),
    Done(Draft),
    Failed(DraftError),
}

/// The drafts service. Cheap to share (`Arc`).
pub struct Drafts {
    model: Option<ModelClient>,
    photos: Arc<dyn DraftPhotos>,
    stream_offered: bool,
}

impl Drafts {
    pub fn new(
        config: &DraftsConfig,
        photos: Arc<dyn DraftPhotos>,
    ) -> Result<Drafts, reqwest::Error> {
        Ok(Drafts {
            model: ModelClient::new(config)?,
            photos,
            stream_offered: config.stream,
        })
    }

    /// Which drafter answers `req`.
    pub fn source_for(&self, req: &DraftRequest) -> DraftSource {
        match (&self.model, req.drafter) {
            (Some(_), DrafterChoice::Auto) => DraftSource::Ai,
            _ => DraftSource::Template,
        }
    }

    /// Whether clients may ask for `stream: true`.
    pub fn stream_offered(&self) -> bool {
        self.stream_offered
    }

    /// Reads and prepares `owner`'s photos of `req` and gathers the drafter's input. Any
    /// photo id that is not `owner`'s fails the whole request.
    pub async fn prepare(
        &self,
        owner: &AccountId,
        req: &DraftRequest,
        place: Place,
        source: DraftSource,
    ) -> Result<DraftInput, DraftError> {
        let for_model =
            source == DraftSource::Ai && self.model.as_ref().is_some_and(|m| m.send_photos());
        // All photos at once (each may be a blob-store read); the first unknown one fails.
        let jpegs = futures_util::future::try_join_all(req.photos.iter().map(|id| async move {
            match self.photos.display_jpeg(owner, id).await? {
                Some(photo) => Ok((id.clone(), photo.jpeg)),
                None => Err(DraftError::UnknownPhoto(id.clone())),
            }
        }))
        .await?;
        // Decoding and re-encoding is CPU work: off the async threads, all photos in one go.
        let photos = tokio::task::spawn_blocking(move || {
            jpegs
                .into_iter()
                .map(|(id, jpeg)| {
                    photos::prepare(&jpeg, for_model)
                        .map_err(|source| DraftError::PhotoUnreadable { id, source })
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await??;
        Ok(DraftInput {
            place,
            menu: req.menu.clone(),
            rating: req.rating,
            keywords: req.keywords.clone(),
            language: req.language,
            photos,
        })
    }

    fn draft(
        input: &DraftInput,
        source: DraftSource,
        text: String,
        model: Option<String>,
        truncated: bool,
        photos_used: usize,
    ) -> Draft {
        let (text_origin, text_origin_if_edited) = match source {
            DraftSource::Ai => (TextOrigin::AiDraft, TextOrigin::AiEdited),
            DraftSource::Template => (TextOrigin::TemplateDraft, TextOrigin::Author),
        };
        Draft {
            text,
            source,
            model,
            language: input.language,
            text_origin,
            text_origin_if_edited,
            truncated,
            photos_used,
        }
    }

    fn photos_sent(&self, input: &DraftInput) -> usize {
        input
            .photos
            .iter()
            .filter(|p| p.model_jpeg.is_some())
            .count()
    }

    /// The whole draft at once.
    pub async fn write(
        &self,
        input: &DraftInput,
        source: DraftSource,
    ) -> Result<Draft, DraftError> {
        let result = match (&self.model, source) {
            (Some(model), DraftSource::Ai) => model
                .complete(input)
                .await
                .map(|c| {
                    Self::draft(
                        input,
                        source,
                        c.text,
                        Some(c.model),
                        c.truncated,
                        self.photos_sent(input),
                    )
                })
                .map_err(DraftError::from),
            _ => Ok(Self::template(input)),
        };
        count(source, &result);
        result
    }

    fn template(input: &DraftInput) -> Draft {
        Self::draft(
            input,
            DraftSource::Template,
            template::write(input),
            None,
            false,
            input.photos.len(),
        )
    }

    /// The draft as it is written. The model's refusals and connection failures come back
    /// here, before the stream starts; later failures as a [`DraftEvent::Failed`].
    pub async fn stream(
        &self,
        input: DraftInput,
        source: DraftSource,
    ) -> Result<BoxStream<'static, DraftEvent>, DraftError> {
        if !self.stream_offered {
            return Err(DraftError::StreamingOff);
        }
        let model = match (&self.model, source) {
            (Some(model), DraftSource::Ai) => model,
            _ => {
                let d = Self::template(&input);
                count::<(), DraftError>(source, &Ok(()));
                let events = vec![DraftEvent::Delta(d.text.clone()), DraftEvent::Done(d)];
                return Ok(futures_util::stream::iter(events).boxed());
            }
        };
        let pieces = match model.stream(&input).await {
            Ok(p) => p,
            Err(e) => {
                let e = DraftError::from(e);
                count::<(), &DraftError>(source, &Err(&e));
                return Err(e);
            }
        };
        let photos_used = self.photos_sent(&input);
        let mut text = String::new();
        let events = pieces.map(move |piece| match piece {
            Ok(Piece::Delta(t)) => {
                text.push_str(&t);
                DraftEvent::Delta(t)
            }
            Ok(Piece::End { model, truncated }) => {
                let cleaned = openai::clean(&text);
                if cleaned.is_empty() {
                    let e = DraftError::Model(ModelError::BadAnswer("the answer is empty".into()));
                    count::<(), &DraftError>(source, &Err(&e));
                    return DraftEvent::Failed(e);
                }
                count::<(), DraftError>(source, &Ok(()));
                DraftEvent::Done(Self::draft(
                    &input,
                    source,
                    cleaned,
                    Some(model),
                    truncated,
                    photos_used,
                ))
            }
            Err(e) => {
                let e = DraftError::Model(e);
                count::<(), &DraftError>(source, &Err(&e));
                DraftEvent::Failed(e)
            }
        });
        Ok(events.boxed())
    }
}

/// `wagu_drafts_total{source, outcome}`: outcome is `ok` or the error code.
fn count<T, E: std::borrow::Borrow<DraftError>>(source: DraftSource, result: &Result<T, E>) {
    let source = match source {
        DraftSource::Ai => "ai",
        DraftSource::Template => "template",
    };
    let outcome = match result {
        Ok(_) => "ok",
        Err(e) => e.borrow().code().as_str(),
    };
    metrics::counter!("wagu_drafts_total", "source" => source, "outcome" => outcome).increment(1);
}
