//! What the `records` users write and type: Korean reviews with menus and prices in won,
//! display names, emails unique to the run, visit dates, edits, and the name prefixes people
//! type into the search box.

use super::mix::Rng;
use std::collections::BTreeSet;
use wagu_proto::PlaceId;
use wagu_proto::records::{MenuItem, PostDraft, TextOrigin};

/// Dishes and their prices in won.
const DISHES: &[(&str, u64)] = &[
    ("김치찌개", 9_000),
    ("된장찌개", 9_000),
    ("제육볶음", 11_000),
    ("비빔밥", 10_000),
    ("물냉면", 13_000),
    ("비빔국수", 9_000),
    ("삼겹살 1인분", 16_000),
    ("순대국", 10_000),
    ("칼국수", 9_500),
    ("떡볶이", 5_000),
    ("김밥", 4_500),
    ("군만두", 7_000),
    ("돈카츠", 12_000),
    ("짜장면", 8_000),
    ("짬뽕", 10_000),
    ("후라이드 치킨", 20_000),
    ("생맥주 500cc", 5_000),
    ("소주", 5_000),
    ("아메리카노", 4_500),
    ("팥빙수", 11_000),
    ("소금빵", 3_800),
    ("갈비탕", 15_000),
];

const OPENINGS: &[&str] = &[
    "점심시간에 회사 동료들이랑 다녀왔어요.",
    "비 오는 날 혼밥하러 들렀습니다.",
    "친구 추천으로 처음 가 봤어요.",
    "퇴근길에 줄 서서 먹었습니다.",
    "주말 저녁 가족 외식으로 방문했어요.",
    "근처 지나가다 간판 보고 들어갔어요.",
];

const MIDDLES: &[&str] = &[
    "국물이 진하고 간이 딱 맞았어요.",
    "양이 넉넉해서 배불리 먹었습니다.",
    "가격 대비 정말 훌륭해요.",
    "웨이팅이 30분 정도 있었지만 기다릴 만했어요.",
    "반찬이 정갈하고 계속 리필해 주셨어요.",
    "조금 짠 편이었지만 맛은 좋았습니다.",
    "사장님이 친절하시고 가게가 깨끗해요.",
    "면이 쫄깃하고 고명도 푸짐했어요.",
];

const CLOSINGS: &[&str] = &[
    "다음에 또 올게요!",
    "재방문 의사 있습니다.",
    "사진보다 실물이 더 맛있어요.",
    "주차는 어려우니 대중교통 추천합니다.",
    "한 번쯤 가 볼 만합니다.",
];

const EDIT_NOTES: &[&str] = &[
    "(수정) 다시 가 보니 더 맛있었어요.",
    "(추가) 사장님이 서비스로 계란찜을 주셨어요.",
    "(수정) 가격이 조금 올랐네요.",
    "(추가) 평일 저녁엔 웨이팅이 없었어요.",
];

const NAMES: &[&str] = &[
    "민지", "서준", "지우", "하은", "도윤", "예린", "시우", "수아", "준호", "유나",
];

/// Days since 1970-01-01 (UTC) as (year, month, day): Howard Hinnant's `civil_from_days`.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Today, in days since 1970-01-01 (UTC).
pub fn today() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    (secs / 86_400) as i64
}

/// A visit within the last 60 days, `YYYY-MM-DD`.
pub fn visit_date(rng: &mut Rng, today: i64) -> String {
    let (y, m, d) = civil_from_days(today - rng.below(60) as i64);
    format!("{y:04}-{m:02}-{d:02}")
}

/// A review of `place`: two to four Korean sentences, one to three dishes with prices.
pub fn draft(rng: &mut Rng, place: &str, today: i64) -> PostDraft {
    let mut text = format!("{} {}", rng.pick(OPENINGS), rng.pick(MIDDLES));
    if rng.below(2) == 0 {
        text.push(' ');
        text.push_str(rng.pick::<&str>(MIDDLES));
    }
    text.push(' ');
    text.push_str(rng.pick::<&str>(CLOSINGS));
    // Distinct dishes: a start and a stride coprime to the list's length (22 = 2 × 11).
    let items = 1 + rng.below(3);
    let start = rng.below(DISHES.len());
    let stride = [1, 3, 5, 7][rng.below(4)];
    let menu = (0..items)
        .map(|k| {
            let (name, price) = DISHES[(start + k * stride) % DISHES.len()];
            MenuItem {
                name: name.to_string(),
                price: Some(price),
            }
        })
        .collect();
    PostDraft {
        place_id: PlaceId(place.to_string()),
        visit_date: visit_date(rng, today),
        menu,
        rating: 3 + rng.below(3) as u8,
        text,
        photos: Vec::new(),
        text_origin: TextOrigin::Author,
    }
}

/// An edit as an author makes one: new text with a note, and sometimes a new rating.
pub fn edit(rng: &mut Rng) -> serde_json::Value {
    let text = format!(
        "{} {} {}",
        rng.pick(OPENINGS),
        rng.pick(MIDDLES),
        rng.pick(EDIT_NOTES)
    );
    if rng.below(2) == 0 {
        serde_json::json!({ "text": text, "rating": 1 + rng.below(5) })
    } else {
        serde_json::json!({ "text": text })
    }
}

/// The display name of user `i`: a Korean given name and a number.
pub fn display_name(i: usize) -> String {
    format!("{} {}", NAMES[i % NAMES.len()], i + 1)
}

/// An address unique to the run (`run_id`) and the user.
pub fn email(run_id: &str, i: usize) -> String {
    format!("lt-{run_id}-{i}@loadtest.wagu.example")
}

/// What people type to find these places: the first two characters of each word of a name
/// (three for a Latin word), lower-cased, each once, in order.
pub fn prefixes<'a>(names: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut out = BTreeSet::new();
    for name in names {
        for word in name.split_whitespace() {
            let word: String = word
                .chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
                .to_lowercase();
            let n = if word.is_ascii() { 3 } else { 2 };
            if word.chars().count() >= n {
                out.insert(word.chars().take(n).collect::<String>());
            }
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_civil() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_818), (2026, 12, 31));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn drafts_pass_the_servers_validation() {
        let mut rng = Rng::new(1);
        let today = today();
        for _ in 0..500 {
            let d = draft(&mut rng, "sample:0001", today);
            d.validate(today).expect("a valid draft");
            assert!(!d.text.is_empty() && !d.text.is_ascii(), "Korean text");
            assert!((1..=3).contains(&d.menu.len()));
            let names: BTreeSet<_> = d.menu.iter().map(|m| &m.name).collect();
            assert_eq!(names.len(), d.menu.len(), "distinct dishes");
            assert!(d.menu.iter().all(|m| m.price.is_some_and(|p| p >= 1000)));
            let e = edit(&mut rng);
            assert!(e["text"].as_str().is_some_and(|t| t.contains('(')));
            assert!(
                e.get("rating")
                    .is_none_or(|r| (1..=5).contains(&r.as_u64().unwrap()))
            );
        }
    }

    #[test]
    fn prefixes_are_what_people_type() {
        let p = prefixes([
            "을지로 골뱅이",
            "Euljiro Soup House 2호점",
            "Co. 빵",
            "을지 다방",
        ]);
        assert_eq!(p, vec!["2호", "eul", "hou", "sou", "골뱅", "다방", "을지"]);
    }

    #[test]
    fn names_and_emails_fit_the_limits() {
        let e = email("0a1b2c3d", 199);
        assert_eq!(e, "lt-0a1b2c3d-199@loadtest.wagu.example");
        assert!(display_name(12_345).chars().count() <= 40);
        assert_ne!(email("x", 1), email("x", 2));
    }
}
