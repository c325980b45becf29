//! The built-in template drafter: writes a short review from what the author gave (the place,
//! menu items, rating and keywords) and simple facts of the photos (count, orientation,
//! brightness, colour cast), in Korean or English. No model, no randomness: the same input
//! always gives the same text, and it states nothing the author did not give.
//!
//! What it does not do: look at what is in the photos, or invent opinions beyond the rating.

use super::photos::{Orientation, PhotoFacts};
use super::{DraftInput, Language};

/// Mean luma above which photos count as bright, below which as dim.
const BRIGHT: u32 = 170;
const DIM: u32 = 80;
/// Mean red-minus-blue beyond which photos have a warm or cool cast.
const WARM: i32 = 25;

/// The draft for `input`.
pub fn write(input: &DraftInput) -> String {
    let mut sentences = Vec::new();
    let ko = input.language == Language::Ko;
    let place = &input.place;
    sentences.push(match (ko, place.category.trim()) {
        (true, "") => format!("{}에 다녀왔어요.", place.name),
        (true, c) => format!("{}({c})에 다녀왔어요.", place.name),
        (false, "") => format!("Had a meal at {}.", place.name),
        (false, c) => format!("Had a meal at {} ({c}).", place.name),
    });
    let dishes: Vec<&str> = input.menu.iter().map(|m| m.name.as_str()).collect();
    if !dishes.is_empty() {
        sentences.push(if ko {
            menu_ko(&dishes)
        } else {
            menu_en(&dishes)
        });
    }
    if let Some(r) = input.rating {
        sentences.push(rating(ko, r).to_string());
    }
    let facts: Vec<PhotoFacts> = input.photos.iter().map(|p| p.facts).collect();
    if !facts.is_empty() {
        sentences.push(photo_count(ko, &facts));
        if let Some(m) = mood(ko, &facts) {
            sentences.push(m);
        }
    }
    let mut text = sentences.join(" ");
    let tags: Vec<String> = input
        .keywords
        .iter()
        .map(|k| k.split_whitespace().collect::<String>())
        .filter(|k| !k.is_empty())
        .map(|k| format!("#{}", k.trim_start_matches('#')))
        .collect();
    if !tags.is_empty() {
        text.push('\n');
        text.push_str(&tags.join(" "));
    }
    text
}

/// Up to three names, then how many more.
fn listed<'a>(dishes: &[&'a str]) -> (Vec<&'a str>, usize) {
    let shown = dishes.iter().take(3).copied().collect();
    (shown, dishes.len().saturating_sub(3))
}

fn menu_en(dishes: &[&str]) -> String {
    let (shown, more) = listed(dishes);
    let list = match (shown.as_slice(), more) {
        ([one], _) => one.to_string(),
        ([init @ .., last], 0) => format!("{} and {last}", init.join(", ")),
        (all, n) => format!(
            "{} and {n} more dish{}",
            all.join(", "),
            if n == 1 { "" } else { "es" }
        ),
    };
    format!("I ordered {list}.")
}

fn menu_ko(dishes: &[&str]) -> String {
    let (shown, more) = listed(dishes);
    let list = shown.join(", ");
    if more > 0 {
        format!("{list} 외 {more}가지를 주문했어요.")
    } else {
        let last = shown.last().copied().unwrap_or_default();
        format!("{list}{} 주문했어요.", object_particle(last))
    }
}

fn rating(ko: bool, r: u8) -> &'static str {
    match (ko, r) {
        (true, 5) => "별점 5점, 정말 만족스러웠어요.",
        (true, 4) => "별점 4점, 맛있었고 또 오고 싶어요.",
        (true, 3) => "별점 3점, 무난했어요.",
        (true, 2) => "별점 2점, 조금 아쉬웠어요.",
        (true, _) => "별점 1점, 다시 가지는 않을 것 같아요.",
        (false, 5) => "Five stars: I loved it.",
        (false, 4) => "Four stars: really good, I'd come back.",
        (false, 3) => "Three stars: decent, nothing special.",
        (false, 2) => "Two stars: a bit disappointing.",
        (false, _) => "One star: I wouldn't go again.",
    }
}

fn orientation_word(ko: bool, o: Orientation) -> &'static str {
    match (ko, o) {
        (true, Orientation::Portrait) => "세로",
        (true, Orientation::Landscape) => "가로",
        (true, Orientation::Square) => "정사각형",
        (false, Orientation::Portrait) => "portrait",
        (false, Orientation::Landscape) => "landscape",
        (false, Orientation::Square) => "square",
    }
}

fn photo_count(ko: bool, facts: &[PhotoFacts]) -> String {
    let n = facts.len();
    let counts: Vec<(Orientation, usize)> = [
        Orientation::Portrait,
        Orientation::Landscape,
        Orientation::Square,
    ]
    .into_iter()
    .map(|o| (o, facts.iter().filter(|f| f.orientation() == o).count()))
    .filter(|(_, c)| *c > 0)
    .collect();
    match (ko, counts.as_slice()) {
        (true, [(o, _)]) => format!("{} 사진 {n}장을 남겼어요.", orientation_word(true, *o)),
        (true, parts) => {
            let detail: Vec<String> = parts
                .iter()
                .map(|(o, c)| format!("{} {c}장", orientation_word(true, *o)))
                .collect();
            format!("사진 {n}장({})을 남겼어요.", detail.join(", "))
        }
        (false, [(o, _)]) => format!(
            "I took {n} {} photo{}.",
            orientation_word(false, *o),
            if n == 1 { "" } else { "s" }
        ),
        (false, parts) => {
            let detail: Vec<String> = parts
                .iter()
                .map(|(o, c)| format!("{c} {}", orientation_word(false, *o)))
                .collect();
            format!("I took {n} photos ({}).", detail.join(", "))
        }
    }
}

/// The photos' average light and colour cast, when either stands out.
fn mood(ko: bool, facts: &[PhotoFacts]) -> Option<String> {
    let n = facts.len() as i64;
    let brightness = facts.iter().map(|f| i64::from(f.brightness)).sum::<i64>() / n;
    let warmth = facts.iter().map(|f| i64::from(f.warmth)).sum::<i64>() / n;
    let light = if brightness > i64::from(BRIGHT) {
        Some(true)
    } else if brightness < i64::from(DIM) {
        Some(false)
    } else {
        None
    };
    let warm = if warmth > i64::from(WARM) {
        Some(true)
    } else if warmth < -i64::from(WARM) {
        Some(false)
    } else {
        None
    };
    Some(match (ko, light, warm) {
        (_, None, None) => return None,
        (true, Some(true), Some(true)) => "밝고 따뜻한 분위기였어요.".into(),
        (true, Some(true), Some(false)) => "밝고 시원한 분위기였어요.".into(),
        (true, Some(true), None) => "밝은 분위기였어요.".into(),
        (true, Some(false), Some(true)) => "은은하고 따뜻한 분위기였어요.".into(),
        (true, Some(false), Some(false)) => "은은하고 차분한 분위기였어요.".into(),
        (true, Some(false), None) => "은은한 분위기였어요.".into(),
        (true, None, Some(true)) => "따뜻한 분위기였어요.".into(),
        (true, None, Some(false)) => "차분한 분위기였어요.".into(),
        (false, l, w) => {
            let words: Vec<&str> = [
                l.map(|b| if b { "bright" } else { "dim" }),
                w.map(|b| if b { "warm" } else { "cool" }),
            ]
            .into_iter()
            .flatten()
            .collect();
            format!("The light was {}.", words.join(" and "))
        }
    })
}

/// 을 after a final consonant, 를 after a vowel (Hangul syllables and digits read in Korean);
/// `을(를)` when the last character does not tell.
fn object_particle(word: &str) -> &'static str {
    match word.trim_end().chars().last() {
        Some(c @ '가'..='힣') => {
            if (c as u32 - '가' as u32).is_multiple_of(28) {
                "를"
            } else {
                "을"
            }
        }
        // 영 일 삼 육 칠 팔 end in a consonant; 이 사 오 구 do not.
        Some('0' | '1' | '3' | '6' | '7' | '8') => "을",
        Some('2' | '4' | '5' | '9') => "를",
        _ => "을(를)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drafts::photos::PreparedPhoto;
    use wagu_proto::PlaceId;
    use wagu_proto::model::LatLng;
    use wagu_proto::records::{MenuItem, Place};

    fn input(language: Language) -> DraftInput {
        DraftInput {
            place: Place {
                id: PlaceId("sample:1".into()),
                name: "을지면옥".into(),
                category: "korean".into(),
                address: String::new(),
                location: LatLng {
                    lat: 37.56,
                    lng: 126.99,
                },
                phone: None,
                hours: None,
            },
            menu: vec![
                MenuItem {
                    name: "평양냉면".into(),
                    price: Some(15_000),
                },
                MenuItem {
                    name: "수육".into(),
                    price: None,
                },
            ],
            rating: Some(5),
            keywords: vec!["담백".into(), "줄 서는 집".into()],
            language,
            photos: vec![photo(800, 1200, 200, 40), photo(900, 1200, 190, 30)],
        }
    }

    fn photo(width: u32, height: u32, brightness: u8, warmth: i16) -> PreparedPhoto {
        PreparedPhoto {
            facts: PhotoFacts {
                width,
                height,
                brightness,
                warmth,
            },
            model_jpeg: None,
        }
    }

    #[test]
    fn a_korean_draft_names_the_place_the_dishes_the_rating_and_the_photos() {
        assert_eq!(
            write(&input(Language::Ko)),
            "을지면옥(korean)에 다녀왔어요. 평양냉면, 수육을 주문했어요. 별점 5점, 정말 \
             만족스러웠어요. 세로 사진 2장을 남겼어요. 밝고 따뜻한 분위기였어요.\n#담백 #줄서는집"
        );
    }

    #[test]
    fn an_english_draft_says_the_same_in_english() {
        let mut i = input(Language::En);
        i.photos.push(photo(1600, 1200, 60, 40));
        assert_eq!(
            write(&i),
            "Had a meal at 을지면옥 (korean). I ordered 평양냉면 and 수육. Five stars: I loved \
             it. I took 3 photos (2 portrait, 1 landscape). The light was warm.\n#담백 #줄서는집"
        );
    }

    #[test]
    fn the_same_input_always_gives_the_same_draft() {
        let i = input(Language::Ko);
        assert_eq!(write(&i), write(&i));
    }

    #[test]
    fn a_bare_draft_has_only_the_place() {
        let mut i = input(Language::En);
        i.place.category.clear();
        i.menu.clear();
        i.rating = None;
        i.keywords.clear();
        i.photos.clear();
        assert_eq!(write(&i), "Had a meal at 을지면옥.");
    }

    #[test]
    fn long_menus_are_summed_up_after_three_dishes() {
        let many: Vec<&str> = vec!["a", "b", "c", "d", "e"];
        assert_eq!(menu_en(&many), "I ordered a, b, c and 2 more dishes.");
        assert_eq!(menu_en(&many[..4]), "I ordered a, b, c and 1 more dish.");
        assert_eq!(menu_ko(&many), "a, b, c 외 2가지를 주문했어요.");
    }

    #[test]
    fn the_korean_object_particle_follows_the_last_sound() {
        assert_eq!(object_particle("냉면"), "을");
        assert_eq!(object_particle("김치찌개"), "를");
        assert_eq!(object_particle("세트 2"), "를");
        assert_eq!(object_particle("세트 3"), "을");
        assert_eq!(object_particle("pasta"), "을(를)");
    }
}
