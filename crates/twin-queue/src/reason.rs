//! Failure reasons as the queue keeps them: bounded in length.

/// Longest dead-letter or failure reason kept, in bytes; longer ones are cut at a char
/// boundary.
pub const MAX_REASON_BYTES: usize = 1024;

/// `text` cut to at most `max` bytes at a char boundary.
pub fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 10), "abc");
    }
}
