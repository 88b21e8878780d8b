//! The filter language (`--filter`, the API's `filter`): `Expr::parse` against a schema with
//! a field of each type; an expression that parses is evaluated on a few rows, and partition
//! pruning (`may_match_partition`) is checked never to prune a partition holding a matching row.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use vitrine_store::filter::ValueRef;
use vitrine_store::{Day, Expr, FieldType, Metric, Schema};

fn schema() -> &'static Schema {
    static S: OnceLock<Schema> = OnceLock::new();
    S.get_or_init(|| {
        let mut s = Schema::new(4, Metric::Cosine).unwrap();
        s.ensure_field("price", FieldType::Float).unwrap();
        s.ensure_field("count", FieldType::Int).unwrap();
        s.ensure_field("city", FieldType::String).unwrap();
        s.ensure_field("verified", FieldType::Bool).unwrap();
        s
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Ok(e) = Expr::parse(text, schema()) else { return };
    let fields = e.fields();
    let _ = e.sources_named();
    let sources = ["products", "avatars", "", "a%b_c"];
    let days = [Day(0), Day(19_680), Day(-719_162), Day(2_932_896), Day(i32::MIN), Day(i32::MAX)];
    let users: [[ValueRef<'static>; 4]; 4] = [
        [ValueRef::Null; 4],
        [ValueRef::Float(1.5), ValueRef::Int(3), ValueRef::Str("Hangzhou"), ValueRef::Bool(true)],
        [ValueRef::Float(f64::NAN), ValueRef::Int(i64::MIN), ValueRef::Str(""), ValueRef::Bool(false)],
        [ValueRef::Float(-0.0), ValueRef::Int(i64::MAX), ValueRef::Str("%_"), ValueRef::Null],
    ];
    for source in sources {
        for day in days {
            let prune = !e.may_match_partition(source, day);
            let day_text = day.to_string();
            for ts in [day.start(), day.start() + 43_200, day.end()] {
                for (u, user) in users.iter().enumerate() {
                    let get = |i: usize| -> ValueRef<'_> {
                        match fields[i].as_str() {
                            "id" => ValueRef::Str("r1"),
                            "uri" => ValueRef::Str("/x.jpg"),
                            "source" => ValueRef::Str(source),
                            "day" => ValueRef::Str(&day_text),
                            "timestamp" => ValueRef::Int(ts),
                            "price" => user[0],
                            "count" => user[1],
                            "city" => user[2],
                            "verified" => user[3],
                            other => panic!("parsed a filter on unknown field {other:?}"),
                        }
                    };
                    let hit = e.eval(&fields, &get);
                    assert!(
                        !(hit && prune),
                        "{text:?} prunes partition ({source:?}, {day_text}) but selects its row (ts {ts}, user values #{u})"
                    );
                }
            }
        }
    }
});
