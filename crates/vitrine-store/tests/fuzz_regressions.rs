//! Inputs found by the fuzz targets (fuzz/, see TESTING.md), each minimized and kept under
//! fuzz/regressions/<target>/: they must give a clear error, never a panic or a wrong answer.

use vitrine_store::{Expr, FieldType, Metric, Schema};

fn schema() -> Schema {
    let mut s = Schema::new(4, Metric::Cosine).unwrap();
    s.ensure_field("price", FieldType::Float).unwrap();
    s
}

/// fuzz/regressions/filter/unknown-field-empty-in-list: `field in []` was accepted for a field
/// the collection does not have (the check only looked at the list's values).
#[test]
fn an_empty_in_list_on_an_unknown_field_is_an_error_naming_it() {
    let e = Expr::parse("d in []", &schema()).unwrap_err();
    assert!(e.to_string().contains("unknown field \"d\""), "{e}");
    let e = Expr::parse("price > 1 and d not in []", &schema()).unwrap_err();
    assert!(e.to_string().contains("unknown field \"d\""), "{e}");
    // Known fields still take an empty list (it selects nothing, or everything with `not`).
    assert!(Expr::parse("price in []", &schema()).is_ok());
    assert!(Expr::parse("source not in []", &schema()).is_ok());
}
