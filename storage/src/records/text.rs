//! Text normalisation for name search: one function decides what "the same name" means, and
//! both backends index and query through it, so they cannot disagree.
//!
//! What it does: NFKC (full-width Latin, compatibility jamo and composed/decomposed Hangul all
//! become one form), Unicode lower-casing, and punctuation/whitespace collapsed to single
//! spaces. What it does not do: transliteration (typing "gimbap" does not find "김밥") or
//! initial-consonant (초성) search; both are left for a search engine.

use unicode_normalization::UnicodeNormalization;

/// Longest normalised query or token kept, in characters: names are at most 200 characters,
/// and a prefix longer than this selects nothing more precisely.
pub const MAX_QUERY_CHARS: usize = 100;
/// Index tokens per name: the whole name and up to this many later word starts.
pub const MAX_TOKENS: usize = 8;

/// `"  Bistro  PAUL's "` → `"bistro paul s"`; `"을지로 골뱅이"` stays as it is.
pub fn normalize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut pending_space = false;
    for c in s.nfkc().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() {
            if pending_space && !out.is_empty() {
                out.push(' ');
            }
            pending_space = false;
            out.push(c);
        } else {
            pending_space = true;
        }
    }
    out.chars().take(MAX_QUERY_CHARS).collect()
}

/// The index tokens of a place name: the normalised name, then the name from each later word
/// on, so "bistro paul" is found by "bis", "bistro p" and "pau". At most [`MAX_TOKENS`].
pub fn tokens(name: &str) -> Vec<String> {
    let n = normalize(name);
    let mut out = Vec::new();
    let mut rest = n.as_str();
    while !rest.is_empty() && out.len() < MAX_TOKENS {
        if !out.iter().any(|t: &String| t == rest) {
            out.push(rest.to_string());
        }
        rest = match rest.find(' ') {
            Some(i) => &rest[i + 1..],
            None => "",
        };
    }
    out
}

/// The partition of a token (or of a query, to find its partition): its first character.
/// Bounded by the data set, not by time: the largest partition holds the names that start
/// with one letter (about 4 % of a Latin-named data set, far less for Hangul syllables).
pub fn partition(token: &str) -> &str {
    match token.char_indices().nth(1) {
        Some((i, _)) => &token[..i],
        None => token,
    }
}

/// The smallest string greater than every string that starts with `prefix`, for range scans.
pub fn prefix_end(prefix: &str) -> String {
    let mut s = prefix.to_string();
    s.push(char::MAX);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latin_and_korean_normalise() {
        assert_eq!(normalize("  Bistro  PAUL's "), "bistro paul s");
        assert_eq!(normalize("ＣＡＦＥ"), "cafe");
        // Decomposed jamo (as some keyboards send them) become the composed syllable.
        assert_eq!(normalize("\u{1106}\u{1161}\u{11BA}집"), "맛집");
        assert_eq!(normalize("을지로 골뱅이"), "을지로 골뱅이");
        assert_eq!(normalize("--"), "");
    }

    #[test]
    fn tokens_are_word_suffixes() {
        assert_eq!(tokens("Bistro Paul"), vec!["bistro paul", "paul"]);
        assert_eq!(tokens("을지로 골뱅이"), vec!["을지로 골뱅이", "골뱅이"]);
        assert_eq!(tokens("a a"), vec!["a a", "a"]);
        assert!(tokens(&"w ".repeat(50)).len() <= MAX_TOKENS);
    }

    #[test]
    fn partitions_are_first_characters() {
        assert_eq!(partition("맛집"), "맛");
        assert_eq!(partition("b"), "b");
        assert!(prefix_end("ab").as_str() > "ab\u{10FFFE}zz");
    }
}
