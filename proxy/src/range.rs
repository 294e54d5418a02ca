//! `Range` requests on repository files (RFC 9110 §14): one byte range is answered with 206
//! and exactly those bytes; a range that starts past the end with 416; anything else (several
//! ranges, another unit, a malformed header, an `If-Range` that is not the current ETag) with
//! the whole body, which the RFC allows. Never wrong bytes.

/// What to send for a request's `Range` against a body of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// 200, the whole body.
    Whole,
    /// 206, bytes `start..=end`.
    Part { start: u64, end: u64 },
    /// 416.
    Unsatisfiable,
}

/// The plan for `range` (the header's value, if any), given `if_range` (the `If-Range` value,
/// if any), the body's `etag` and `len`.
pub fn plan(range: Option<&str>, if_range: Option<&str>, etag: &str, len: u64) -> Plan {
    let Some(range) = range else {
        return Plan::Whole;
    };
    if if_range.is_some_and(|v| v.trim() != etag) {
        return Plan::Whole;
    }
    let Some(spec) = range.trim().strip_prefix("bytes=") else {
        return Plan::Whole;
    };
    let spec = spec.trim();
    if spec.contains(',') {
        return Plan::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Plan::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| -> Option<u64> {
        if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if first.is_empty() {
        // A suffix: the last `n` bytes.
        return match number(last) {
            None => Plan::Whole,
            Some(0) => Plan::Unsatisfiable,
            Some(_) if len == 0 => Plan::Unsatisfiable,
            Some(n) => Plan::Part {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        };
    }
    let Some(start) = number(first) else {
        return Plan::Whole;
    };
    let end = if last.is_empty() {
        None
    } else {
        match number(last) {
            Some(e) if e >= start => Some(e),
            _ => return Plan::Whole,
        }
    };
    if start >= len {
        return Plan::Unsatisfiable;
    }
    Plan::Part {
        start,
        end: end.map_or(len - 1, |e| e.min(len - 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans() {
        let e = "\"abc\"";
        let p = |r: &str| plan(Some(r), None, e, 100);
        assert_eq!(plan(None, None, e, 100), Plan::Whole);
        assert_eq!(p("bytes=0-9"), Plan::Part { start: 0, end: 9 });
        assert_eq!(p("bytes=90-"), Plan::Part { start: 90, end: 99 });
        assert_eq!(p("bytes=90-500"), Plan::Part { start: 90, end: 99 });
        assert_eq!(p("bytes=-10"), Plan::Part { start: 90, end: 99 });
        assert_eq!(p("bytes=-1000"), Plan::Part { start: 0, end: 99 });
        assert_eq!(p("bytes=100-"), Plan::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Plan::Unsatisfiable);
        assert_eq!(p("bytes=0-1,5-6"), Plan::Whole);
        assert_eq!(p("items=0-1"), Plan::Whole);
        assert_eq!(p("bytes=5-1"), Plan::Whole);
        assert_eq!(p("bytes=x-1"), Plan::Whole);
        assert_eq!(p("bytes=-"), Plan::Whole);
        assert_eq!(p("bytes=99999999999999999999-"), Plan::Whole);
        assert_eq!(plan(Some("bytes=0-0"), None, e, 0), Plan::Unsatisfiable);
        assert_eq!(plan(Some("bytes=-5"), None, e, 0), Plan::Unsatisfiable);
        assert_eq!(
            plan(Some("bytes=0-0"), Some(e), e, 10),
            Plan::Part { start: 0, end: 0 }
        );
        assert_eq!(plan(Some("bytes=0-0"), Some("\"old\""), e, 10), Plan::Whole);
    }
}
