//! The prompts sent to a language model: a fixed system prompt per language and a user prompt
//! built from the place, menu items, rating, keywords and the photos' count. The photos
//! themselves travel as image parts next to it (see [`super::openai`]).
//!
//! What it does not do: call the model, or carry anything about the author (no name, no
//! account, no location beyond the place's own name and category, no photo metadata).
//! The author's words (menu, keywords) are quoted as data; the output is only ever shown to
//! that same author for editing.

use super::{DraftInput, Language};

/// The instructions, in the language the review is to be written in.
pub fn system(language: Language) -> &'static str {
    match language {
        Language::Ko => {
            "당신은 맛집 기록 앱의 리뷰 초안 작성 도우미입니다. 사용자가 준 가게, 메뉴, 별점, \
             키워드와 음식 사진을 바탕으로 자연스러운 한국어 방문 후기 초안을 3~5문장으로 \
             씁니다. 사용자가 주지 않은 사실(가격, 위치, 직원 이름 등)은 지어내지 말고, 사진에 \
             보이는 음식만 묘사하세요. 제목, 따옴표, 해시태그, 이모지 없이 본문만 쓰세요."
        }
        Language::En => {
            "You help people write reviews in a restaurant diary app. From the place, the \
             dishes, the rating, the keywords and the food photos the user gives, draft a \
             natural first-person visit review in English, 3 to 5 sentences. Do not invent \
             facts the user did not give (prices, location, staff names); describe only food \
             visible in the photos. Write the review text only: no title, quotes, hashtags or \
             emoji."
        }
    }
}

/// What the review is about, as plain text.
pub fn user(input: &DraftInput, photos_attached: usize) -> String {
    let ko = input.language == Language::Ko;
    let mut lines = Vec::new();
    let place = &input.place;
    lines.push(match (ko, place.category.trim()) {
        (true, "") => format!("가게: {}", place.name),
        (true, c) => format!("가게: {} (분류: {c})", place.name),
        (false, "") => format!("Place: {}", place.name),
        (false, c) => format!("Place: {} (category: {c})", place.name),
    });
    if !input.menu.is_empty() {
        let names: Vec<&str> = input.menu.iter().map(|m| m.name.as_str()).collect();
        let label = if ko { "먹은 메뉴" } else { "Dishes" };
        lines.push(format!("{label}: {}", names.join(", ")));
    }
    if let Some(r) = input.rating {
        lines.push(if ko {
            format!("별점: 5점 만점에 {r}점")
        } else {
            format!("Rating: {r} out of 5")
        });
    }
    if !input.keywords.is_empty() {
        let label = if ko { "키워드" } else { "Keywords" };
        lines.push(format!("{label}: {}", input.keywords.join(", ")));
    }
    let total = input.photos.len();
    if total > 0 {
        lines.push(match (ko, photos_attached) {
            (true, 0) => format!("사진 {total}장 (첨부하지 않음)"),
            (true, n) => format!("첨부한 사진: {n}장"),
            (false, 0) => format!("Photos: {total} (not attached)"),
            (false, n) => format!("Photos attached: {n}"),
        });
    }
    lines.push(
        if ko {
            "이 방문의 리뷰 초안을 써 주세요."
        } else {
            "Please draft the review of this visit."
        }
        .to_string(),
    );
    lines.join("\n")
}
