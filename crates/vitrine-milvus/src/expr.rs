//! vitrine's selections in Milvus's boolean expression language, with vitrine's null rule.
//!
//! Built-in fields are scalar columns (`id`, `uri`, `source`, `day`, `timestamp`); user fields
//! live in one JSON column, `fields`, where a null is an absent key. Milvus compares an absent
//! key as false, but `!=`, `not in` and `not` then select it (measured on 2.3.5), which is not
//! vitrine's three-valued rule. So an expression is translated twice, as "certainly true" and
//! "certainly false", and every predicate on a user field is guarded by `exists`: a row is
//! selected exactly when the embedded store would select it.

use vitrine_store::filter::{CmpOp, Expr, Literal};
use vitrine_store::{Day, Selection};

/// The JSON column that holds the user fields.
pub const FIELDS: &str = "fields";
/// Columns every row has.
pub const BUILT_IN: &[&str] = &["id", "uri", "source", "day", "timestamp"];

/// A string literal in Milvus's syntax.
pub fn string(s: &str) -> String {
    // JSON's escapes (\" \\ \n \uXXXX) are what Milvus's parser reads.
    serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
}

fn literal(l: &Literal) -> String {
    match l {
        Literal::Str(s) => string(s),
        Literal::Int(i) => i.to_string(),
        // `{:?}` keeps a decimal point and round-trips the f64.
        Literal::Float(f) => format!("{f:?}"),
        Literal::Bool(b) => b.to_string(),
    }
}

/// The column expression of `field`, and whether it can be null (a user field).
fn column(field: &str) -> (String, bool) {
    if BUILT_IN.contains(&field) {
        (field.to_string(), false)
    } else {
        (format!("{FIELDS}[{}]", string(field)), true)
    }
}

fn op(o: CmpOp) -> &'static str {
    match o {
        CmpOp::Eq => "==",
        CmpOp::Ne => "!=",
        CmpOp::Lt => "<",
        CmpOp::Le => "<=",
        CmpOp::Gt => ">",
        CmpOp::Ge => ">=",
    }
}

fn negate(o: CmpOp) -> CmpOp {
    match o {
        CmpOp::Eq => CmpOp::Ne,
        CmpOp::Ne => CmpOp::Eq,
        CmpOp::Lt => CmpOp::Ge,
        CmpOp::Le => CmpOp::Gt,
        CmpOp::Gt => CmpOp::Le,
        CmpOp::Ge => CmpOp::Lt,
    }
}

/// `guard and (body)` for a nullable column: a null makes the predicate neither true nor false.
fn guarded(col: &str, nullable: bool, body: String) -> String {
    if nullable {
        format!("((exists {col}) and {body})")
    } else {
        format!("({body})")
    }
}

/// The expression selecting rows where `e` is true (`want`) or certainly false (`!want`).
pub fn translate(e: &Expr, want: bool) -> String {
    match e {
        Expr::Const(b) => {
            if *b == want {
                "true".into()
            } else {
                "false".into()
            }
        }
        Expr::Cmp {
            field, op: o, value, ..
        } => {
            let (col, nullable) = column(field);
            let o = if want { *o } else { negate(*o) };
            guarded(&col, nullable, format!("{col} {} {}", op(o), literal(value)))
        }
        Expr::In {
            field, values, negated, ..
        } => {
            let (col, nullable) = column(field);
            let list = values.iter().map(literal).collect::<Vec<_>>().join(", ");
            let inside = *negated != want;
            let kw = if inside { "in" } else { "not in" };
            guarded(&col, nullable, format!("{col} {kw} [{list}]"))
        }
        Expr::Like {
            field,
            pattern,
            negated,
            ..
        } => {
            let (col, nullable) = column(field);
            let body = format!("{col} like {}", string(pattern));
            if *negated != want {
                guarded(&col, nullable, body)
            } else {
                guarded(&col, nullable, format!("not ({body})"))
            }
        }
        Expr::And(a, b) => {
            if want {
                format!("({} and {})", translate(a, true), translate(b, true))
            } else {
                format!("({} or {})", translate(a, false), translate(b, false))
            }
        }
        Expr::Or(a, b) => {
            if want {
                format!("({} or {})", translate(a, true), translate(b, true))
            } else {
                format!("({} and {})", translate(a, false), translate(b, false))
            }
        }
        Expr::Not(a) => translate(a, !want),
    }
}

/// The expression of a selection (sources, days, filter); empty when it selects everything.
pub fn selection(s: &Selection) -> String {
    let mut parts = Vec::new();
    if !s.sources.is_empty() {
        let list = s.sources.iter().map(|x| string(x)).collect::<Vec<_>>().join(", ");
        parts.push(format!("source in [{list}]"));
    }
    if let Some(f) = s.from {
        parts.push(format!("day >= {}", string(&f.to_string())));
    }
    if let Some(t) = s.to {
        parts.push(format!("day <= {}", string(&t.to_string())));
    }
    if let Some(f) = &s.filter {
        parts.push(translate(f, true));
    }
    parts.join(" and ")
}

/// `a and b`, either possibly empty.
pub fn and(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("({a}) and ({b})"),
    }
}

/// `id in [...]`.
pub fn ids(ids: &[String]) -> String {
    format!(
        "id in [{}]",
        ids.iter().map(|i| string(i)).collect::<Vec<_>>().join(", ")
    )
}

/// `day in [...]`.
pub fn days(days: &[Day]) -> String {
    format!(
        "day in [{}]",
        days.iter()
            .map(|d| string(&d.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use vitrine_store::{FieldType, Metric, Schema};

    fn parse(text: &str) -> Expr {
        let mut s = Schema::new(4, Metric::Cosine).unwrap();
        s.ensure_field("price", FieldType::Float).unwrap();
        s.ensure_field("tag", FieldType::String).unwrap();
        Expr::parse(text, &s).unwrap()
    }

    #[test]
    fn user_fields_are_guarded_so_a_null_is_neither_true_nor_false() {
        assert_eq!(
            translate(&parse("price != 5"), true),
            r#"((exists fields["price"]) and fields["price"] != 5)"#
        );
        assert_eq!(
            translate(&parse("not (price == 5)"), true),
            r#"((exists fields["price"]) and fields["price"] != 5)"#
        );
        assert_eq!(
            translate(&parse("not (price > 5 or tag like 'a%')"), true),
            r#"(((exists fields["price"]) and fields["price"] <= 5) and ((exists fields["tag"]) and not (fields["tag"] like "a%")))"#
        );
        // Built-in columns are never null: no guard.
        assert_eq!(
            translate(&parse("source not in ['a']"), true),
            r#"(source not in ["a"])"#
        );
    }

    #[test]
    fn literals_are_escaped() {
        assert_eq!(string("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(literal(&Literal::Float(5.0)), "5.0");
    }
}
