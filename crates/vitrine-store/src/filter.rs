//! Filter expressions over row fields, in a documented subset of Milvus's boolean expression
//! syntax so the same text can be passed through to a Milvus backend.
//!
//! ```text
//! expr    := or
//! or      := and (("or" | "||") and)*
//! and     := unary (("and" | "&&") unary)*
//! unary   := ("not" | "!") unary | "(" expr ")" | "true" | "false" | predicate
//! predicate := FIELD ("==" | "!=" | "<" | "<=" | ">" | ">=") LITERAL
//!            | FIELD ["not"] "in" "[" LITERAL ("," LITERAL)* "]"
//!            | FIELD ["not"] "like" STRING        (% = any run, _ = one character)
//! LITERAL := "text" | 'text' | 42 | -1.5 | true | false
//! ```
//!
//! Fields are the built-ins `id`, `uri`, `source`, `day` (text, `YYYY-MM-DD`), `timestamp`
//! (int, unix seconds) and the collection's user fields. Keywords are case-insensitive.
//! Nulls follow SQL's three-valued rule ([`Expr::eval3`]): a predicate on a field that is null
//! in a row is unknown, `not` of unknown is unknown, and a row is selected only when the whole
//! expression is true. So `price != 5` and `not (price == 5)` agree: neither selects a row
//! without a price.
//!
//! Before any vector is read, [`Expr::may_match_partition`] evaluates the expression with only
//! the partition's source and day known; partitions for which it is certainly false are pruned.

pub use crate::error::FilterError;
use crate::schema::{FieldType, Schema};

/// A literal value in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// Text.
    Str(String),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    /// `==`
    Eq,
    /// `!=`
    Ne,
    /// `<`
    Lt,
    /// `<=`
    Le,
    /// `>`
    Gt,
    /// `>=`
    Ge,
}

/// A parsed filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A constant.
    Const(bool),
    /// `field op literal`
    Cmp {
        /// Field name.
        field: String,
        /// Operator.
        op: CmpOp,
        /// Right-hand side.
        value: Literal,
        /// Byte position of the field in the text (for errors).
        pos: usize,
    },
    /// `field [not] in [..]`
    In {
        /// Field name.
        field: String,
        /// The list.
        values: Vec<Literal>,
        /// `not in`.
        negated: bool,
        /// Byte position of the field.
        pos: usize,
    },
    /// `field [not] like "pattern"`
    Like {
        /// Field name.
        field: String,
        /// The pattern.
        pattern: String,
        /// `not like`.
        negated: bool,
        /// Byte position of the field.
        pos: usize,
    },
    /// Both.
    And(Box<Expr>, Box<Expr>),
    /// Either.
    Or(Box<Expr>, Box<Expr>),
    /// Negation.
    Not(Box<Expr>),
}

/// A field value as the filter sees it (borrowed from the segment).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ValueRef<'a> {
    /// Absent.
    Null,
    /// Text.
    Str(&'a str),
    /// Integer.
    Int(i64),
    /// Float.
    Float(f64),
    /// Boolean.
    Bool(bool),
}

impl ValueRef<'_> {
    /// An owned copy.
    pub fn to_value(self) -> crate::Value {
        match self {
            ValueRef::Null => crate::Value::Null,
            ValueRef::Str(s) => crate::Value::Str(s.to_string()),
            ValueRef::Int(i) => crate::Value::Int(i),
            ValueRef::Float(f) => crate::Value::Float(f),
            ValueRef::Bool(b) => crate::Value::Bool(b),
        }
    }
}

/// The type of a field as filters see it: built-ins first, then the schema's user fields.
pub fn field_type(schema: &Schema, name: &str) -> Option<FieldType> {
    match name {
        "id" | "uri" | "source" | "day" => Some(FieldType::String),
        "timestamp" => Some(FieldType::Int),
        _ => schema.field_type(name),
    }
}

impl Expr {
    /// Parses `text` and checks every field and literal against `schema`.
    pub fn parse(text: &str, schema: &Schema) -> Result<Expr, FilterError> {
        let expr = Parser::new(text)?.parse_all()?;
        expr.check(text, schema)?;
        Ok(expr)
    }

    fn check(&self, text: &str, schema: &Schema) -> Result<(), FilterError> {
        let err = |pos: usize, message: String| FilterError {
            expr: text.to_string(),
            pos,
            message,
        };
        let check_lit = |field: &str, pos: usize, lit: &Literal| -> Result<(), FilterError> {
            let Some(ty) = field_type(schema, field) else {
                let mut known: Vec<String> = ["id", "uri", "source", "day", "timestamp"]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                known.extend(schema.fields.iter().map(|f| f.name.clone()));
                return Err(err(
                    pos,
                    format!("unknown field {field:?} (fields: {})", known.join(", ")),
                ));
            };
            let ok = matches!(
                (ty, lit),
                (FieldType::String, Literal::Str(_))
                    | (FieldType::Int | FieldType::Float, Literal::Int(_) | Literal::Float(_))
                    | (FieldType::Bool, Literal::Bool(_))
            );
            if ok {
                Ok(())
            } else {
                Err(err(
                    pos,
                    format!(
                        "field {field:?} is {ty} but is compared with {}",
                        match lit {
                            Literal::Str(t) => format!("text {t:?}"),
                            Literal::Int(i) => format!("integer {i}"),
                            Literal::Float(f) => format!("number {f}"),
                            Literal::Bool(b) => format!("boolean {b}"),
                        }
                    ),
                ))
            }
        };
        match self {
            Expr::Const(_) => Ok(()),
            Expr::Cmp { field, op, value, pos } => {
                check_lit(field, *pos, value)?;
                if matches!(value, Literal::Bool(_)) && !matches!(op, CmpOp::Eq | CmpOp::Ne) {
                    return Err(err(*pos, format!("booleans support only == and != (field {field:?})")));
                }
                Ok(())
            }
            // An empty list has no literal to check, but its field must still exist.
            Expr::In { field, values, pos, .. } if values.is_empty() => match field_type(schema, field) {
                Some(_) => Ok(()),
                None => check_lit(field, *pos, &Literal::Bool(false)),
            },
            Expr::In { field, values, pos, .. } => values.iter().try_for_each(|v| check_lit(field, *pos, v)),
            Expr::Like {
                field, pos, pattern, ..
            } => check_lit(field, *pos, &Literal::Str(pattern.clone())),
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.check(text, schema)?;
                b.check(text, schema)
            }
            Expr::Not(a) => a.check(text, schema),
        }
    }

    /// The distinct field names the expression reads, in first-use order.
    pub fn fields(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit(&mut |e| {
            if let Expr::Cmp { field, .. } | Expr::In { field, .. } | Expr::Like { field, .. } = e {
                if !out.iter().any(|o: &String| o == field) {
                    out.push(field.clone());
                }
            }
        });
        out
    }

    /// The source names the expression compares `source` with (`==`, `!=`, `in`, `not in`), so
    /// a caller can refuse a source the collection does not have.
    pub fn sources_named(&self) -> Vec<String> {
        let mut out = Vec::new();
        self.visit(&mut |e| match e {
            Expr::Cmp {
                field,
                op: CmpOp::Eq | CmpOp::Ne,
                value: Literal::Str(s),
                ..
            } if field == "source" => out.push(s.clone()),
            Expr::In { field, values, .. } if field == "source" => out.extend(values.iter().filter_map(|v| match v {
                Literal::Str(s) => Some(s.clone()),
                _ => None,
            })),
            _ => {}
        });
        out
    }

    fn visit(&self, f: &mut dyn FnMut(&Expr)) {
        f(self);
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.visit(f);
                b.visit(f);
            }
            Expr::Not(a) => a.visit(f),
            _ => {}
        }
    }

    /// Evaluates on one row; `get(i)` returns the value of `self.fields()[i]`. A row is
    /// selected only when the expression is true: see [`Expr::eval3`] for nulls.
    pub fn eval<'a>(&self, fields: &[String], get: &dyn Fn(usize) -> ValueRef<'a>) -> bool {
        self.eval3(fields, get) == Some(true)
    }

    /// Three-valued evaluation (SQL's rule): a comparison, `in` or `like` on a null (absent)
    /// value is unknown (`None`); `not` of unknown is unknown; `and` is false if either side is
    /// false, `or` is true if either side is true, else unknown. So `price != 5`,
    /// `not (price == 5)`, `x not in [..]` and `not (x in [..])` all leave out rows without a
    /// price or an x.
    pub fn eval3<'a>(&self, fields: &[String], get: &dyn Fn(usize) -> ValueRef<'a>) -> Option<bool> {
        let idx = |name: &str| {
            fields
                .iter()
                .position(|f| f == name)
                .expect("field list from Expr::fields")
        };
        match self {
            Expr::Const(b) => Some(*b),
            Expr::Cmp { field, op, value, .. } => compare3(get(idx(field)), *op, value),
            Expr::In {
                field, values, negated, ..
            } => {
                let v = get(idx(field));
                if matches!(v, ValueRef::Null) || matches!(v, ValueRef::Float(f) if f.is_nan()) {
                    return None;
                }
                Some(values.iter().any(|l| compare(v, CmpOp::Eq, l)) != *negated)
            }
            Expr::Like {
                field,
                pattern,
                negated,
                ..
            } => match get(idx(field)) {
                ValueRef::Str(s) => Some(like(s, pattern) != *negated),
                _ => None,
            },
            Expr::And(a, b) => match (a.eval3(fields, get), b.eval3(fields, get)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.eval3(fields, get), b.eval3(fields, get)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::Not(a) => a.eval3(fields, get).map(|b| !b),
        }
    }

    /// False only if no row of partition (`source`, `day`) can match; used to prune partitions
    /// before reading them. Three-valued: predicates on other fields are "unknown".
    pub fn may_match_partition(&self, source: &str, day: crate::Day) -> bool {
        self.tri(source, day) != Some(false)
    }

    fn tri(&self, source: &str, day: crate::Day) -> Option<bool> {
        match self {
            Expr::Const(b) => Some(*b),
            Expr::Cmp { field, op, value, .. } => match field.as_str() {
                "source" => Some(compare(ValueRef::Str(source), *op, value)),
                "day" => Some(compare(ValueRef::Str(&day.to_string()), *op, value)),
                "timestamp" => {
                    let lo = compare(ValueRef::Int(day.start()), *op, value);
                    let hi = compare(ValueRef::Int(day.end()), *op, value);
                    match op {
                        // Equality is known only when the value lies outside the day.
                        CmpOp::Eq | CmpOp::Ne => {
                            let inside = compare(ValueRef::Int(day.start()), CmpOp::Le, value)
                                && compare(ValueRef::Int(day.end()), CmpOp::Ge, value);
                            (!inside).then_some(*op == CmpOp::Ne)
                        }
                        // Order comparisons are monotone: known when both ends of the day agree.
                        _ => (lo == hi).then_some(lo),
                    }
                }
                _ => None,
            },
            Expr::In {
                field, values, negated, ..
            } => {
                let d = day.to_string();
                let v = match field.as_str() {
                    "source" => ValueRef::Str(source),
                    "day" => ValueRef::Str(&d),
                    _ => return None,
                };
                Some(values.iter().any(|l| compare(v, CmpOp::Eq, l)) != *negated)
            }
            Expr::Like {
                field,
                pattern,
                negated,
                ..
            } => match field.as_str() {
                "source" => Some(like(source, pattern) != *negated),
                "day" => Some(like(&day.to_string(), pattern) != *negated),
                _ => None,
            },
            Expr::And(a, b) => match (a.tri(source, day), b.tri(source, day)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            },
            Expr::Or(a, b) => match (a.tri(source, day), b.tri(source, day)) {
                (Some(true), _) | (_, Some(true)) => Some(true),
                (Some(false), Some(false)) => Some(false),
                _ => None,
            },
            Expr::Not(a) => a.tri(source, day).map(|b| !b),
        }
    }
}

/// A comparison that is unknown (`None`) when the value is null or not comparable (NaN).
fn compare3(v: ValueRef<'_>, op: CmpOp, lit: &Literal) -> Option<bool> {
    match v {
        ValueRef::Null => None,
        ValueRef::Float(f) if f.is_nan() => None,
        _ => Some(compare(v, op, lit)),
    }
}

fn compare(v: ValueRef<'_>, op: CmpOp, lit: &Literal) -> bool {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (v, lit) {
        (ValueRef::Str(a), Literal::Str(b)) => Some(a.cmp(b.as_str())),
        (ValueRef::Int(a), Literal::Int(b)) => Some(a.cmp(b)),
        (ValueRef::Int(a), Literal::Float(b)) => (a as f64).partial_cmp(b),
        (ValueRef::Float(a), Literal::Int(b)) => a.partial_cmp(&(*b as f64)),
        (ValueRef::Float(a), Literal::Float(b)) => a.partial_cmp(b),
        (ValueRef::Bool(a), Literal::Bool(b)) => Some(a.cmp(b)),
        _ => None,
    };
    let Some(ord) = ord else { return false };
    match op {
        CmpOp::Eq => ord == Ordering::Equal,
        CmpOp::Ne => ord != Ordering::Equal,
        CmpOp::Lt => ord == Ordering::Less,
        CmpOp::Le => ord != Ordering::Greater,
        CmpOp::Gt => ord == Ordering::Greater,
        CmpOp::Ge => ord != Ordering::Less,
    }
}

/// SQL-style LIKE: `%` matches any run of characters, `_` exactly one.
fn like(s: &str, pattern: &str) -> bool {
    let s: Vec<char> = s.chars().collect();
    let p: Vec<char> = pattern.chars().collect();
    // Iterative wildcard matching with backtracking to the last `%`.
    let (mut i, mut j, mut star, mut mark) = (0usize, 0usize, None::<usize>, 0usize);
    while i < s.len() {
        if j < p.len() && (p[j] == '_' || p[j] == s[i]) {
            i += 1;
            j += 1;
        } else if j < p.len() && p[j] == '%' {
            star = Some(j);
            mark = i;
            j += 1;
        } else if let Some(st) = star {
            j = st + 1;
            mark += 1;
            i = mark;
        } else {
            return false;
        }
    }
    while j < p.len() && p[j] == '%' {
        j += 1;
    }
    j == p.len()
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Num(Literal),
    Op(&'static str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    End,
}

struct Parser<'a> {
    text: &'a str,
    toks: Vec<(Tok, usize)>,
    at: usize,
    depth: usize,
    terms: usize,
}

/// Deeper nesting than this is refused (evaluation recurses, on threads with small stacks).
const MAX_DEPTH: usize = 128;
/// More terms than this are refused for the same reason.
const MAX_TERMS: usize = 1024;

impl<'a> Parser<'a> {
    fn new(text: &'a str) -> Result<Self, FilterError> {
        Ok(Parser {
            text,
            toks: lex(text)?,
            at: 0,
            depth: 0,
            terms: 0,
        })
    }

    fn err(&self, pos: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            expr: self.text.to_string(),
            pos,
            message: message.into(),
        }
    }

    fn peek(&self) -> &(Tok, usize) {
        &self.toks[self.at]
    }

    fn next(&mut self) -> (Tok, usize) {
        let t = self.toks[self.at].clone();
        if self.at + 1 < self.toks.len() {
            self.at += 1;
        }
        t
    }

    fn keyword(&self, kw: &str) -> bool {
        matches!(&self.peek().0, Tok::Ident(s) if s.eq_ignore_ascii_case(kw))
    }

    fn parse_all(mut self) -> Result<Expr, FilterError> {
        if self.peek().0 == Tok::End {
            return Err(self.err(0, "empty filter"));
        }
        let e = self.parse_or()?;
        match self.peek() {
            (Tok::End, _) => Ok(e),
            (t, pos) => Err(self.err(*pos, format!("unexpected {} after a complete expression", describe(t)))),
        }
    }

    fn parse_or(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.parse_and()?;
        while self.keyword("or") || self.peek().0 == Tok::Op("||") {
            self.next();
            e = Expr::Or(Box::new(e), Box::new(self.parse_and()?));
        }
        Ok(e)
    }

    fn parse_and(&mut self) -> Result<Expr, FilterError> {
        let mut e = self.parse_unary()?;
        while self.keyword("and") || self.peek().0 == Tok::Op("&&") {
            self.next();
            e = Expr::And(Box::new(e), Box::new(self.parse_unary()?));
        }
        Ok(e)
    }

    fn parse_unary(&mut self) -> Result<Expr, FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            let p = self.peek().1;
            return Err(self.err(p, format!("filter nests deeper than {MAX_DEPTH} levels")));
        }
        let e = self.parse_unary_inner();
        self.depth -= 1;
        e
    }

    fn parse_unary_inner(&mut self) -> Result<Expr, FilterError> {
        // and/or chains build trees as deep as they are long; bound them too.
        self.terms += 1;
        if self.terms > MAX_TERMS {
            let p = self.peek().1;
            return Err(self.err(
                p,
                format!("filter has more than {MAX_TERMS} terms (use `in [...]` for long lists)"),
            ));
        }
        if self.keyword("not") || self.peek().0 == Tok::Op("!") {
            self.next();
            return Ok(Expr::Not(Box::new(self.parse_unary()?)));
        }
        let (tok, pos) = self.next();
        match tok {
            Tok::LParen => {
                let e = self.parse_or()?;
                match self.next() {
                    (Tok::RParen, _) => Ok(e),
                    (t, p) => Err(self.err(
                        p,
                        format!(
                            "expected ')' to close the '(' at position {pos}, found {}",
                            describe(&t)
                        ),
                    )),
                }
            }
            Tok::Ident(s) if s.eq_ignore_ascii_case("true") => Ok(Expr::Const(true)),
            Tok::Ident(s) if s.eq_ignore_ascii_case("false") => Ok(Expr::Const(false)),
            Tok::Ident(field) => self.parse_predicate(field, pos),
            t => Err(self.err(
                pos,
                format!("expected a field name, 'not' or '(', found {}", describe(&t)),
            )),
        }
    }

    fn parse_predicate(&mut self, field: String, pos: usize) -> Result<Expr, FilterError> {
        let negated = if self.keyword("not") {
            self.next();
            true
        } else {
            false
        };
        if self.keyword("in") {
            self.next();
            match self.next() {
                (Tok::LBracket, _) => {}
                (t, p) => return Err(self.err(p, format!("expected '[' after 'in', found {}", describe(&t)))),
            }
            let mut values = Vec::new();
            if self.peek().0 == Tok::RBracket {
                self.next();
                return Ok(Expr::In {
                    field,
                    values,
                    negated,
                    pos,
                });
            }
            loop {
                values.push(self.parse_literal()?);
                match self.next() {
                    (Tok::Comma, _) => continue,
                    (Tok::RBracket, _) => break,
                    (t, p) => {
                        return Err(self.err(p, format!("expected ',' or ']' in the list, found {}", describe(&t))))
                    }
                }
            }
            return Ok(Expr::In {
                field,
                values,
                negated,
                pos,
            });
        }
        if self.keyword("like") {
            self.next();
            return match self.next() {
                (Tok::Str(pattern), _) => Ok(Expr::Like {
                    field,
                    pattern,
                    negated,
                    pos,
                }),
                (t, p) => Err(self.err(
                    p,
                    format!("expected a quoted pattern after 'like', found {}", describe(&t)),
                )),
            };
        }
        if negated {
            let p = self.peek().1;
            return Err(self.err(p, "expected 'in' or 'like' after 'not'"));
        }
        let op = match self.next() {
            (Tok::Op("=="), _) => CmpOp::Eq,
            (Tok::Op("!="), _) => CmpOp::Ne,
            (Tok::Op("<"), _) => CmpOp::Lt,
            (Tok::Op("<="), _) => CmpOp::Le,
            (Tok::Op(">"), _) => CmpOp::Gt,
            (Tok::Op(">="), _) => CmpOp::Ge,
            (t, p) => {
                return Err(self.err(
                    p,
                    format!(
                        "expected a comparison (==, !=, <, <=, >, >=), 'in' or 'like' after field {field:?}, found {}",
                        describe(&t)
                    ),
                ))
            }
        };
        let value = self.parse_literal()?;
        Ok(Expr::Cmp { field, op, value, pos })
    }

    fn parse_literal(&mut self) -> Result<Literal, FilterError> {
        match self.next() {
            (Tok::Str(s), _) => Ok(Literal::Str(s)),
            (Tok::Num(n), _) => Ok(n),
            (Tok::Ident(s), _) if s.eq_ignore_ascii_case("true") => Ok(Literal::Bool(true)),
            (Tok::Ident(s), _) if s.eq_ignore_ascii_case("false") => Ok(Literal::Bool(false)),
            (t, p) => Err(self.err(
                p,
                format!(
                    "expected a value (\"text\", number, true or false), found {}",
                    describe(&t)
                ),
            )),
        }
    }
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("'{s}'"),
        Tok::Str(s) => format!("string {s:?}"),
        Tok::Num(Literal::Int(i)) => format!("number {i}"),
        Tok::Num(Literal::Float(f)) => format!("number {f}"),
        Tok::Num(_) => "a number".into(),
        Tok::Op(o) => format!("'{o}'"),
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Comma => "','".into(),
        Tok::End => "the end of the filter".into(),
    }
}

fn lex(text: &str) -> Result<Vec<(Tok, usize)>, FilterError> {
    let err = |pos: usize, message: String| FilterError {
        expr: text.to_string(),
        pos,
        message,
    };
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let tok = match c {
            b'(' => Tok::LParen,
            b')' => Tok::RParen,
            b'[' => Tok::LBracket,
            b']' => Tok::RBracket,
            b',' => Tok::Comma,
            b'"' | b'\'' => {
                let mut s = String::new();
                i += 1;
                loop {
                    let Some(ch) = text[i..].chars().next() else {
                        return Err(err(start, "unterminated string".into()));
                    };
                    i += ch.len_utf8();
                    if ch as u32 == c as u32 {
                        break;
                    }
                    if ch == '\\' {
                        let Some(esc) = text[i..].chars().next() else {
                            return Err(err(start, "unterminated string".into()));
                        };
                        i += esc.len_utf8();
                        s.push(match esc {
                            'n' => '\n',
                            't' => '\t',
                            other => other,
                        });
                    } else {
                        s.push(ch);
                    }
                }
                out.push((Tok::Str(s), start));
                continue;
            }
            b'=' | b'!' | b'<' | b'>' | b'&' | b'|' => {
                let two = text.get(i..i + 2).unwrap_or("");
                let op: &'static str = match two {
                    "==" => "==",
                    "!=" => "!=",
                    "<=" => "<=",
                    ">=" => ">=",
                    "&&" => "&&",
                    "||" => "||",
                    _ => match c {
                        b'<' => "<",
                        b'>' => ">",
                        b'!' => "!",
                        b'=' => return Err(err(start, "'=' is not an operator; use '==' to compare".into())),
                        _ => return Err(err(start, format!("unexpected character {:?}", c as char))),
                    },
                };
                i += op.len();
                out.push((Tok::Op(op), start));
                continue;
            }
            b'0'..=b'9' | b'-' | b'+' | b'.' => {
                let mut j = i + 1;
                while j < b.len()
                    && (b[j].is_ascii_digit()
                        || matches!(b[j], b'.' | b'e' | b'E' | b'_')
                        || (matches!(b[j], b'-' | b'+') && matches!(b[j - 1], b'e' | b'E')))
                {
                    j += 1;
                }
                let s = text[i..j].replace('_', "");
                let lit = if let Ok(n) = s.parse::<i64>() {
                    Literal::Int(n)
                } else if let Ok(f) = s.parse::<f64>() {
                    if !f.is_finite() {
                        return Err(err(start, format!("number {s} is not finite")));
                    }
                    Literal::Float(f)
                } else {
                    return Err(err(start, format!("invalid number {:?}", &text[i..j])));
                };
                i = j;
                out.push((Tok::Num(lit), start));
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                out.push((Tok::Ident(text[i..j].to_string()), start));
                i = j;
                continue;
            }
            _ => {
                let ch = text[i..].chars().next().unwrap_or('?');
                return Err(err(start, format!("unexpected character {ch:?}")));
            }
        };
        out.push((tok, start));
        i += 1;
    }
    out.push((Tok::End, text.len()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::Metric;

    fn schema() -> Schema {
        let mut s = Schema::new(4, Metric::Cosine).unwrap();
        s.ensure_field("price", FieldType::Float).unwrap();
        s.ensure_field("city", FieldType::String).unwrap();
        s.ensure_field("verified", FieldType::Bool).unwrap();
        s
    }

    fn eval(text: &str, row: &[(&str, ValueRef<'static>)]) -> bool {
        let e = Expr::parse(text, &schema()).unwrap();
        let fields = e.fields();
        let get = |i: usize| {
            row.iter()
                .find(|(n, _)| *n == fields[i])
                .map_or(ValueRef::Null, |(_, v)| *v)
        };
        e.eval(&fields, &get)
    }

    #[test]
    fn evaluates_milvus_style_expressions() {
        let row = [
            ("source", ValueRef::Str("avatars")),
            ("price", ValueRef::Float(150.0)),
            ("city", ValueRef::Str("Hangzhou")),
            ("verified", ValueRef::Bool(true)),
        ];
        assert!(eval(r#"source == "avatars" and price > 100"#, &row));
        assert!(!eval(r#"source == "avatars" && price > 200"#, &row));
        assert!(eval(r#"source in ["products", 'avatars']"#, &row));
        assert!(!eval(r#"source not in ["avatars"]"#, &row));
        assert!(eval(r#"not (price < 100 or city == "Beijing")"#, &row));
        assert!(eval(r#"city like "Hang%" and verified == true"#, &row));
        assert!(eval(r#"city like "H_ngzh%u""#, &row));
        assert!(!eval(r#"city not like "%zhou""#, &row));
        assert!(eval("price >= 150 and price <= 150.0", &row));
        // Null (three-valued): a predicate on a null and its negation are both unknown, so the
        // row is left out either way; `or true` still selects it, `and true` does not.
        let null = [("price", ValueRef::Null), ("city", ValueRef::Null)];
        for text in [
            "price > 1",
            "not price > 1",
            "price != 5",
            "not (price == 5)",
            "city in [\"x\"]",
            "city not in [\"x\"]",
            "not (city in [\"x\"])",
            "city like \"%\"",
            "city not like \"x\"",
            "price > 1 and true",
        ] {
            assert!(!eval(text, &null), "{text} selected a row with nulls");
        }
        assert!(eval("true or price > 1", &null));
        assert!(eval("price > 1 or city == \"x\" or true", &null));
    }

    /// A random expression over source, day, price and city, as text.
    fn random_expr(rng: &mut impl rand::Rng, depth: u32) -> String {
        use rand::seq::IndexedRandom;
        let ops = ["==", "!=", "<", "<=", ">", ">="];
        let sources = ["\"products\"", "\"avatars\"", "\"ads\""];
        let days = ["\"2023-11-18\"", "\"2023-11-19\"", "\"2023-11-20\""];
        if depth == 0 || rng.random_bool(0.35) {
            return match rng.random_range(0..9) {
                0 => format!("source {} {}", ops.choose(rng).unwrap(), sources.choose(rng).unwrap()),
                1 => format!("day {} {}", ops.choose(rng).unwrap(), days.choose(rng).unwrap()),
                2 => format!(
                    "source {}in [{}]",
                    if rng.random() { "not " } else { "" },
                    sources.choose(rng).unwrap()
                ),
                3 => format!("day {}like \"2023-11-1%\"", if rng.random() { "not " } else { "" }),
                4 => format!("price {} {}", ops.choose(rng).unwrap(), rng.random_range(0..4)),
                5 => format!("city {} \"x\"", ops.choose(rng).unwrap()),
                6 => format!(
                    "timestamp {} {}",
                    ops.choose(rng).unwrap(),
                    1_700_265_600 + rng.random_range(-2..3) * 43_200 + rng.random_range(-1..2)
                ),
                7 => (if rng.random() { "true" } else { "false" }).to_string(),
                _ => format!("city {}in [\"x\", \"y\"]", if rng.random() { "not " } else { "" }),
            };
        }
        let a = random_expr(rng, depth - 1);
        match rng.random_range(0..3) {
            0 => format!("({a}) and ({})", random_expr(rng, depth - 1)),
            1 => format!("({a}) or ({})", random_expr(rng, depth - 1)),
            _ => format!("not ({a})"),
        }
    }

    #[test]
    fn partition_pruning_is_sound_on_random_expressions() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let s = schema();
        let sources = ["products", "avatars", "ads"];
        let days: Vec<crate::Day> = ["2023-11-18", "2023-11-19", "2023-11-20"]
            .iter()
            .map(|d| d.parse().unwrap())
            .collect();
        let (mut pruned, mut kept) = (0, 0);
        for _ in 0..3000 {
            let text = random_expr(&mut rng, 3);
            let e = Expr::parse(&text, &s).unwrap_or_else(|err| panic!("{text}: {err}"));
            let fields = e.fields();
            for source in sources {
                for &day in &days {
                    if e.may_match_partition(source, day) {
                        kept += 1;
                        continue;
                    }
                    pruned += 1;
                    // Pruned: no row of the partition may match, whatever its other values.
                    let ds = day.to_string();
                    for _ in 0..20 {
                        let price = match rng.random_range(0..4) {
                            0 => ValueRef::Null,
                            1 => ValueRef::Float(f64::NAN),
                            _ => ValueRef::Float(rng.random_range(0..4) as f64),
                        };
                        let city = match rng.random_range(0..3) {
                            0 => ValueRef::Null,
                            1 => ValueRef::Str("x"),
                            _ => ValueRef::Str("y"),
                        };
                        // The day's first and last seconds, where an off-by-one would show.
                        let ts = match rng.random_range(0..4) {
                            0 => day.start(),
                            1 => day.end(),
                            _ => day.start() + rng.random_range(0..86_400),
                        };
                        let get = |i: usize| match fields[i].as_str() {
                            "source" => ValueRef::Str(source),
                            "day" => ValueRef::Str(&ds),
                            "timestamp" => ValueRef::Int(ts),
                            "price" => price,
                            "city" => city,
                            f => panic!("unexpected field {f}"),
                        };
                        assert!(
                            !e.eval(&fields, &get),
                            "{text}: partition ({source}, {day}) was pruned but a row matches"
                        );
                    }
                }
            }
        }
        assert!(
            pruned > 1000 && kept > 1000,
            "pruned {pruned}, kept {kept}: the generator is too one-sided"
        );
    }

    #[test]
    fn negated_operators_agree_with_not_on_every_value() {
        let pairs = [
            ("price != 2", "not (price == 2)"),
            ("price >= 2", "not (price < 2)"),
            ("city not in [\"x\"]", "not (city in [\"x\"])"),
            ("city not like \"x%\"", "not (city like \"x%\")"),
        ];
        for v in [
            ValueRef::Null,
            ValueRef::Float(f64::NAN),
            ValueRef::Float(2.0),
            ValueRef::Float(3.0),
        ] {
            for c in [ValueRef::Null, ValueRef::Str("x"), ValueRef::Str("y")] {
                let row = [("price", v), ("city", c)];
                for (a, b) in pairs {
                    assert_eq!(eval(a, &row), eval(b, &row), "{a} vs {b} on {row:?}");
                }
            }
        }
    }

    #[test]
    fn errors_name_the_position_and_the_problem() {
        let s = schema();
        let e = Expr::parse(r#"source == "a" and prcie > 3"#, &s).unwrap_err();
        assert_eq!(e.pos, 18);
        assert!(e.message.contains("unknown field \"prcie\""), "{e}");
        let e = Expr::parse(r#"source = "a""#, &s).unwrap_err();
        assert_eq!(e.pos, 7);
        let e = Expr::parse(r#"(source == "a""#, &s).unwrap_err();
        assert!(e.message.contains("expected ')'"), "{e}");
        assert_eq!(e.pos, 14);
        let e = Expr::parse(r#"price > "cheap""#, &s).unwrap_err();
        assert!(
            e.message.contains("is float but is compared with text \"cheap\""),
            "{e}"
        );
        let e = Expr::parse(r#"source == "a" price"#, &s).unwrap_err();
        assert!(e.message.contains("unexpected 'price'"), "{e}");
        let e = Expr::parse(r#"city == "unterminated"#, &s).unwrap_err();
        assert!(e.message.contains("unterminated"), "{e}");
        assert!(Expr::parse("", &s).is_err());
        let deep = format!("{}price > 1", "not ".repeat(10_000));
        assert!(Expr::parse(&deep, &s).unwrap_err().message.contains("nests deeper"));
        let parens = format!("{}price > 1{}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(Expr::parse(&parens, &s).unwrap_err().message.contains("nests deeper"));
        let long = vec!["price > 1"; 5000].join(" and ");
        assert!(Expr::parse(&long, &s)
            .unwrap_err()
            .message
            .contains("more than 1024 terms"));
        assert!(e.to_string().contains('^'));
    }

    #[test]
    fn prunes_partitions_with_three_valued_logic() {
        let s = schema();
        let d: crate::Day = "2023-11-19".parse().unwrap();
        let p = |t: &str| Expr::parse(t, &s).unwrap().may_match_partition("avatars", d);
        assert!(p(r#"source == "avatars" and price > 1"#));
        assert!(!p(r#"source == "products" and price > 1"#));
        assert!(p(r#"source == "products" or price > 1"#));
        assert!(!p(r#"not (source in ["avatars"])"#));
        assert!(!p(r#"day >= "2023-11-20""#));
        assert!(p(r#"day >= "2023-11-19" and day <= "2023-11-23""#));
        assert!(!p(&format!("timestamp > {}", d.end())));
        assert!(p(&format!("timestamp > {}", d.end() - 5)));
        assert!(!p(&format!("timestamp == {}", d.end() + 10)));
    }
}
