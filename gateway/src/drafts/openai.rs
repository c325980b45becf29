//! The language-model client: OpenAI-compatible chat completions through `async-openai`,
//! plain or streamed, under one overall deadline, with every failure sorted into a
//! [`ModelError`] a client can act on.
//!
//! The endpoint (base URL, key) comes only from the configuration: [`Endpoint`] implements
//! `async-openai`'s `Config` itself, so no `OPENAI_*` variable is ever read (its
//! `OpenAIConfig::default()` would read four of them). The key is a `SecretString`: it is
//! redacted from `Debug` and sent only in the `Authorization` header (marked sensitive).
//!
//! What it does not do: build the prompts ([`super::prompt`]), prepare the photos
//! ([`super::photos`]), or fall back to the template (a model failure is the client's to see).

use super::{DraftInput, prompt};
use crate::config::DraftsConfig;
use async_openai::Client;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestMessage, ChatCompletionRequestMessageContentPartImage,
    ChatCompletionRequestMessageContentPartText, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestSystemMessageContent, ChatCompletionRequestUserMessage,
    ChatCompletionRequestUserMessageContent, ChatCompletionRequestUserMessageContentPart,
    CreateChatCompletionRequest, FinishReason, ImageDetail, ImageUrl,
};
use base64::Engine;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;
use tokio::time::Instant;

/// The most characters of an upstream error message repeated to the client.
const MAX_UPSTREAM_MESSAGE_CHARS: usize = 300;

/// Why a model gave no draft.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// No connection (refused, reset, DNS, TLS).
    #[error("the model server cannot be reached: {0}")]
    Unreachable(#[source] OpenAIError),
    /// It answered 429 or 5xx (after the client's own retries).
    #[error("the model server is unavailable (HTTP {status}): {message}")]
    Unavailable { status: u16, message: String },
    /// The whole call took longer than `drafts.timeout_secs`.
    #[error("the model did not finish within {0:?}")]
    Timeout(Duration),
    /// The model does not take image input (a text-only model, or a llama-server without a
    /// vision projector).
    #[error("the model does not accept images: {0}")]
    ImagesUnsupported(String),
    /// It refused the request for another reason (bad key, unknown model…).
    #[error("the model server refused the request{}: {message}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Rejected {
        status: Option<u16>,
        message: String,
    },
    /// It answered, but not with usable text (empty, a refusal, not a chat completion).
    #[error("the model gave no usable draft: {0}")]
    BadAnswer(String),
}

/// A finished, non-streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    /// The configured model name (not the server's name for itself: llama-server answers
    /// with the path of its model file).
    pub model: String,
    /// The answer stopped at `max_completion_tokens`.
    pub truncated: bool,
}

/// One piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    Delta(String),
    /// The last piece: the (configured) model and whether it hit the token limit.
    End {
        model: String,
        truncated: bool,
    },
}

/// Base URL and key, and nothing from the environment.
#[derive(Clone, Debug)]
pub struct Endpoint {
    api_base: String,
    api_key: SecretString,
}

impl async_openai::config::Config for Endpoint {
    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let key = self.api_key.expose_secret();
        if !key.is_empty()
            && let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {key}"))
        {
            v.set_sensitive(true);
            headers.insert(AUTHORIZATION, v);
        }
        headers
    }
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_base)
    }
    fn query(&self) -> Vec<(&str, &str)> {
        Vec::new()
    }
    fn api_base(&self) -> &str {
        &self.api_base
    }
    fn api_key(&self) -> &SecretString {
        &self.api_key
    }
}

pub struct ModelClient {
    client: Client<Endpoint>,
    model: String,
    max_completion_tokens: u32,
    timeout: Duration,
    send_photos: bool,
}

impl ModelClient {
    /// The client `config` describes; `None` when no model is configured.
    pub fn new(config: &DraftsConfig) -> Result<Option<ModelClient>, reqwest::Error> {
        let (Some(base), Some(model)) = (&config.base_url, &config.model) else {
            return Ok(None);
        };
        let timeout = Duration::from_secs(config.timeout_secs);
        // Only a connect timeout here: the one deadline over the whole call (the client's
        // retries and every streamed token included) is ours, in `complete` and `stream`.
        let http = reqwest::Client::builder()
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .build()?;
        let endpoint = Endpoint {
            api_base: base.trim_end_matches('/').to_string(),
            api_key: SecretString::from(
                config
                    .api_key
                    .as_ref()
                    .map(|k| k.expose().to_string())
                    .unwrap_or_default(),
            ),
        };
        Ok(Some(ModelClient {
            client: Client::build(http, endpoint),
            model: model.trim().to_string(),
            max_completion_tokens: config.max_completion_tokens,
            timeout,
            send_photos: config.send_photos,
        }))
    }

    /// Whether photos go to the model as images.
    pub fn send_photos(&self) -> bool {
        self.send_photos
    }

    /// The chat completion request for `input`: the system prompt, then one user message with
    /// the text prompt and (when photos are sent) each photo as a `data:image/jpeg;base64,…`
    /// image part of low detail.
    pub fn request(&self, input: &DraftInput, stream: bool) -> CreateChatCompletionRequest {
        let images: Vec<&bytes::Bytes> = if self.send_photos {
            input
                .photos
                .iter()
                .filter_map(|p| p.model_jpeg.as_ref())
                .collect()
        } else {
            Vec::new()
        };
        let text = prompt::user(input, images.len());
        let content = if images.is_empty() {
            ChatCompletionRequestUserMessageContent::Text(text)
        } else {
            let mut parts = vec![ChatCompletionRequestUserMessageContentPart::Text(
                ChatCompletionRequestMessageContentPartText {
                    text,
                    ..Default::default()
                },
            )];
            for jpeg in images {
                let b64 = base64::engine::general_purpose::STANDARD.encode(jpeg);
                parts.push(ChatCompletionRequestUserMessageContentPart::ImageUrl(
                    ChatCompletionRequestMessageContentPartImage {
                        image_url: ImageUrl {
                            url: format!("data:image/jpeg;base64,{b64}"),
                            detail: Some(ImageDetail::Low),
                        },
                        ..Default::default()
                    },
                ));
            }
            ChatCompletionRequestUserMessageContent::Array(parts)
        };
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages: vec![
                ChatCompletionRequestMessage::System(ChatCompletionRequestSystemMessage {
                    content: ChatCompletionRequestSystemMessageContent::Text(
                        prompt::system(input.language).to_string(),
                    ),
                    name: None,
                }),
                ChatCompletionRequestMessage::User(ChatCompletionRequestUserMessage {
                    content,
                    name: None,
                }),
            ],
            max_completion_tokens: Some(self.max_completion_tokens),
            stream: stream.then_some(true),
            ..Default::default()
        }
    }

    /// One answer, whole.
    pub async fn complete(&self, input: &DraftInput) -> Result<Completion, ModelError> {
        let request = self.request(input, false);
        let chat = self.client.chat();
        let call = chat.create(request);
        let response = tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| ModelError::Timeout(self.timeout))?
            .map_err(|e| self.scrub(classify(e, self.timeout)))?;
        let Some(choice) = response.choices.into_iter().next() else {
            return Err(ModelError::BadAnswer("the answer has no choices".into()));
        };
        if let Some(refusal) = choice.message.refusal.filter(|r| !r.trim().is_empty()) {
            return Err(ModelError::BadAnswer(format!(
                "the model refused: {}",
                clip(&refusal)
            )));
        }
        let text = clean(choice.message.content.as_deref().unwrap_or_default());
        if text.is_empty() {
            return Err(ModelError::BadAnswer("the answer is empty".into()));
        }
        Ok(Completion {
            text,
            model: self.model.clone(),
            truncated: choice.finish_reason == Some(FinishReason::Length),
        })
    }

    /// One answer as it is generated. Errors before the first token (the server refused,
    /// cannot be reached…) are returned here, before any byte reaches the client; the stream
    /// itself ends with [`Piece::End`] or an error (a timeout included).
    pub async fn stream(
        &self,
        input: &DraftInput,
    ) -> Result<BoxStream<'static, Result<Piece, ModelError>>, ModelError> {
        let deadline = Instant::now() + self.timeout;
        let timeout = self.timeout;
        let request = self.request(input, true);
        let upstream = tokio::time::timeout_at(deadline, self.client.chat().create_stream(request))
            .await
            .map_err(|_| ModelError::Timeout(timeout))?
            .map_err(|e| self.scrub(classify(e, timeout)))?;
        struct State {
            upstream: async_openai::types::chat::ChatCompletionResponseStream,
            model: String,
            truncated: bool,
            done: bool,
        }
        let state = State {
            upstream,
            model: self.model.clone(),
            truncated: false,
            done: false,
        };
        let pieces = futures_util::stream::unfold(state, move |mut s| async move {
            if s.done {
                return None;
            }
            loop {
                let next = match tokio::time::timeout_at(deadline, s.upstream.next()).await {
                    Err(_) => {
                        s.done = true;
                        return Some((Err(ModelError::Timeout(timeout)), s));
                    }
                    Ok(n) => n,
                };
                match next {
                    None => {
                        s.done = true;
                        let end = Piece::End {
                            model: s.model.clone(),
                            truncated: s.truncated,
                        };
                        return Some((Ok(end), s));
                    }
                    Some(Err(e)) => {
                        s.done = true;
                        return Some((Err(classify(e, timeout)), s));
                    }
                    Some(Ok(chunk)) => {
                        let mut text = String::new();
                        for c in chunk.choices {
                            if c.finish_reason == Some(FinishReason::Length) {
                                s.truncated = true;
                            }
                            if let Some(t) = c.delta.content {
                                text.push_str(&t);
                            }
                        }
                        if !text.is_empty() {
                            return Some((Ok(Piece::Delta(text)), s));
                        }
                    }
                }
            }
        });
        Ok(pieces.boxed())
    }
}

/// A model's text made fit for a post: trimmed, without control characters (newlines and
/// tabs stay), at most the post text limit.
pub fn clean(text: &str) -> String {
    let kept: String = text
        .trim()
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .take(wagu_proto::records::MAX_POST_TEXT_CHARS)
        .collect();
    kept.trim_end().to_string()
}

impl ModelClient {
    /// An upstream message that quotes our key (a server echoing what it refused) loses it.
    fn scrub(&self, e: ModelError) -> ModelError {
        let key = self.client.config().api_key.expose_secret();
        if key.is_empty() {
            return e;
        }
        let hide = |m: String| m.replace(key, "***");
        match e {
            ModelError::Unavailable { status, message } => ModelError::Unavailable {
                status,
                message: hide(message),
            },
            ModelError::ImagesUnsupported(m) => ModelError::ImagesUnsupported(hide(m)),
            ModelError::Rejected { status, message } => ModelError::Rejected {
                status,
                message: hide(message),
            },
            ModelError::BadAnswer(m) => ModelError::BadAnswer(hide(m)),
            other => other,
        }
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    if s.chars().count() <= MAX_UPSTREAM_MESSAGE_CHARS {
        s.to_string()
    } else {
        let head: String = s.chars().take(MAX_UPSTREAM_MESSAGE_CHARS).collect();
        format!("{head}…")
    }
}

/// Whether an upstream error message says the model takes no images. Servers word it
/// differently: llama-server "image input is not supported", OpenAI "image_url is only
/// supported by certain models", vLLM "… is not a multimodal model".
fn says_no_images(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    (m.contains("image") || m.contains("multimodal") || m.contains("vision"))
        && [
            "not supported",
            "only supported",
            "does not support",
            "doesn't support",
            "not a multimodal",
            "mmproj",
        ]
        .iter()
        .any(|p| m.contains(p))
}

/// Sorts an `async-openai` error into what the client is told.
fn classify(e: OpenAIError, timeout: Duration) -> ModelError {
    match e {
        OpenAIError::Reqwest(r) if r.is_timeout() => ModelError::Timeout(timeout),
        OpenAIError::Reqwest(_) => ModelError::Unreachable(e),
        OpenAIError::ApiError(api) => {
            let status = api.status_code.as_u16();
            // A 5xx body is passed on raw (it may be JSON with the message inside).
            let message = error_message(&api.api_error.message);
            if says_no_images(&message) {
                ModelError::ImagesUnsupported(clip(&message))
            } else if status == 429 || status >= 500 {
                ModelError::Unavailable {
                    status,
                    message: clip(&message),
                }
            } else {
                ModelError::Rejected {
                    status: Some(status),
                    message: clip(&message),
                }
            }
        }
        // Not a chat completion, or an error body async-openai could not read (llama-server's
        // `code` is a number where OpenAI's is a string).
        OpenAIError::JSONDeserialize(_, content) => {
            match serde_json::from_str::<serde_json::Value>(&content)
                .ok()
                .and_then(|v| v.get("error").cloned())
            {
                Some(err) => {
                    let message = err
                        .get("message")
                        .and_then(|m| m.as_str())
                        .map(str::to_string)
                        .unwrap_or_else(|| err.to_string());
                    if says_no_images(&message) {
                        ModelError::ImagesUnsupported(clip(&message))
                    } else {
                        ModelError::Rejected {
                            status: err
                                .get("code")
                                .and_then(|c| c.as_u64())
                                .and_then(|c| u16::try_from(c).ok()),
                            message: clip(&message),
                        }
                    }
                }
                None => ModelError::BadAnswer("the answer is not a chat completion".into()),
            }
        }
        OpenAIError::StreamError(s) => match *s {
            async_openai::error::StreamError::UnknownEvent(_) => {
                ModelError::BadAnswer("the stream carried an unknown event".into())
            }
            async_openai::error::StreamError::EventStream(m) => {
                ModelError::BadAnswer(format!("the stream broke off: {}", clip(&m)))
            }
        },
        other => ModelError::Rejected {
            status: None,
            message: clip(&other.to_string()),
        },
    }
}

/// The `error.message` of a JSON error body, or the body itself.
fn error_message(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_image_input_are_recognised_in_the_words_servers_use() {
        for m in [
            "image input is not supported - hint: if this is unexpected, you may need to provide the mmproj",
            "Invalid content type. image_url is only supported by certain models.",
            "Qwen2 is not a multimodal model",
        ] {
            assert!(says_no_images(m), "{m}");
        }
        assert!(!says_no_images("model not found"));
        assert!(!says_no_images("context length exceeded"));
    }

    #[test]
    fn model_text_is_trimmed_and_stripped_of_control_characters() {
        assert_eq!(
            clean("  좋아요\u{0}!\n\n맛있어요\t \u{7} "),
            "좋아요!\n\n맛있어요"
        );
        let long = "가".repeat(wagu_proto::records::MAX_POST_TEXT_CHARS + 10);
        assert_eq!(
            clean(&long).chars().count(),
            wagu_proto::records::MAX_POST_TEXT_CHARS
        );
    }
}
