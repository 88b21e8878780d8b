//! Milvus names for vitrine's collections and partitions.
//!
//! Milvus names allow letters, digits and `_`; vitrine's also allow `-`. The escape below is
//! one-to-one (`_` → `_u`, `-` → `_h`), so two vitrine names never share a Milvus name.
//!
//! A Milvus partition holds one source and one calendar month: `p_<source>_<YYYYMM>`. Milvus
//! caps a collection at 4,096 partitions (`_default` included), so 4,095 / 12 = 341
//! source-years fit; (source, day) partitions would have run out after 4,095 days of one source.
//! Day-level selection is an exact `day` condition on top.

use vitrine_store::Day;

/// The prefix of every Milvus collection vitrine makes (beside [`crate::meta::META`]).
pub const PREFIX: &str = "vitrine__";

/// `name` in Milvus's alphabet, one-to-one.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for c in name.chars() {
        match c {
            '_' => out.push_str("_u"),
            '-' => out.push_str("_h"),
            c if c.is_ascii_alphanumeric() => out.push(c),
            // vitrine's names are checked before they get here; keep anything else distinct.
            c => out.push_str(&format!("_x{:x}_", c as u32)),
        }
    }
    out
}

/// The Milvus collection of vitrine collection `name`.
pub fn collection(name: &str) -> String {
    format!("{PREFIX}{}", escape(name))
}

/// `(year, month)` of a day.
pub fn month(day: Day) -> (i32, u32) {
    let s = day.to_string();
    let year = s.get(0..4).and_then(|y| y.parse().ok()).unwrap_or(1970);
    let month = s.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
    (year, month)
}

/// The Milvus partition that holds (`source`, `day`).
pub fn partition(source: &str, day: Day) -> String {
    let (y, m) = month(day);
    format!("p_{}_{y:04}{m:02}", escape(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_to_one_and_partitions_are_source_months() {
        assert_eq!(collection("demo"), "vitrine__demo");
        assert_ne!(escape("a_b"), escape("a-b"));
        assert_ne!(escape("a_hb"), escape("a-b"));
        let d: Day = "2023-11-19".parse().unwrap();
        assert_eq!(partition("products", d), "p_products_202311");
        assert_eq!(
            partition("products", "2023-11-30".parse().unwrap()),
            partition("products", d)
        );
        assert_ne!(
            partition("products", "2023-12-01".parse().unwrap()),
            partition("products", d)
        );
        assert_eq!(partition("user_avatars", d), "p_user_uavatars_202311");
    }
}
