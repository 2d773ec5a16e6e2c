//! Which columns hold personal or secret data, by name and type: what
//! `discover_sensitive` proposes, `require_masks` insists on and
//! `masking_report` shows. Pure.
//!
//! A name is split into words (`_`, `-`, spaces, camelCase), and a kind
//! matches whole words or word pairs, never substrings: `classname` holds no
//! `ssn`, `pipeline` no `ip`. The type must fit the kind too: a boolean
//! `is_email_verified` or an integer `email_count` is not an email.

use crate::catalog::TableDef;
use crate::mask::{Strategy, TypeFacts};
use crate::sqltext::{qualified, quote_ident, quote_literal};

/// A sensitive column: what it holds and the mask that fits its type.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: &'static str,
    pub strategy: Strategy,
}

/// The words of an identifier, lower case.
fn words(name: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for ch in name.chars() {
        if !ch.is_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if ch.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = ch.is_lowercase() || ch.is_ascii_digit();
        cur.extend(ch.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Kinds by the words that name them: a single word, or two in a row
/// (also found written as one word: `firstname`, `birthdate`).
const KINDS: &[(&str, &[&str])] = &[
    (
        "email",
        &["email", "e mail", "mail address", "emailaddress"],
    ),
    (
        "name",
        &[
            "first name",
            "last name",
            "full name",
            "middle name",
            "given name",
            "family name",
            "maiden name",
            "surname",
            "forename",
            "contact name",
            "customer name",
            "person name",
            "patient name",
            "employee name",
        ],
    ),
    (
        "phone",
        &[
            "phone",
            "telephone",
            "mobile",
            "cellphone",
            "cell phone",
            "fax",
            "msisdn",
            "phone number",
        ],
    ),
    (
        "national id",
        &[
            "ssn",
            "social security",
            "national id",
            "passport",
            "passport number",
            "tax id",
            "taxpayer id",
            "driver license",
            "drivers license",
            "driving licence",
            "nino",
            "personal id",
        ],
    ),
    (
        "card number",
        &[
            "card number",
            "credit card",
            "cc number",
            "pan",
            "cvv",
            "cvc",
            "card cvv",
        ],
    ),
    (
        "bank account",
        &[
            "iban",
            "bic",
            "swift",
            "account number",
            "bank account",
            "routing number",
            "sort code",
        ],
    ),
    (
        "address",
        &[
            "address",
            "street",
            "address line",
            "postcode",
            "post code",
            "postal code",
            "zip",
            "zipcode",
            "zip code",
        ],
    ),
    (
        "birth date",
        &[
            "birth date",
            "date of birth",
            "dob",
            "birthday",
            "birthdate",
            "born on",
        ],
    ),
    (
        "salary",
        &[
            "salary",
            "wage",
            "wages",
            "income",
            "compensation",
            "pay rate",
            "payrate",
        ],
    ),
    (
        "secret",
        &[
            "password",
            "passwd",
            "pwd",
            "secret",
            "token",
            "api key",
            "apikey",
            "access key",
            "private key",
            "otp",
            "password hash",
            "pin code",
            "security answer",
        ],
    ),
    (
        "ip address",
        &[
            "ip",
            "ip address",
            "ipaddress",
            "ip addr",
            "remote addr",
            "client ip",
        ],
    ),
];

/// Words that make a name about something else: `email_count`,
/// `phone_verified_at`, `address_type`, `token_expires`, `password_changed_at`.
const NOT_THE_VALUE: &[&str] = &[
    "count", "verified", "type", "kind", "id", "at", "on", "enabled", "flag", "status", "expires",
    "expiry", "changed", "length", "len", "hint", "format", "policy", "timeout", "attempts",
];

pub fn kind_of(name: &str) -> Option<&'static str> {
    let w = words(name);
    // The value a column holds is named by its last words: `home_address`
    // is an address, `address_id` is a key, `is_email_verified` a flag.
    let last = w.last()?;
    if NOT_THE_VALUE.contains(&last.as_str()) || w.first().is_some_and(|f| f == "is" || f == "has")
    {
        return None;
    }
    let joined = w.join(" ");
    let glued = w.concat();
    for (kind, names) in KINDS {
        for n in names.iter() {
            let ends = joined == *n
                || joined.ends_with(&format!(" {n}"))
                || glued == n.replace(' ', "")
                || (n.contains(' ') && glued.ends_with(&n.replace(' ', "")) && !n.starts_with(' '));
            if ends {
                return Some(kind);
            }
        }
    }
    None
}

/// The sensitive kind of a column and a mask that fits its type, or None.
pub fn classify(name: &str, facts: &TypeFacts, not_null: bool) -> Option<Finding> {
    finding(kind_of(name)?, facts, not_null)
}

/// A kind's mask for a column of this type, or None when the type does not
/// fit the kind.
pub fn finding(kind: &'static str, facts: &TypeFacts, not_null: bool) -> Option<Finding> {
    let strategy = match (kind, facts.category.as_str()) {
        ("email", "S") => Strategy::Email,
        ("name" | "address", "S") => Strategy::Name,
        ("phone", "S") => Strategy::Phone,
        ("card number" | "bank account", "S") => Strategy::Partial {
            prefix: 0,
            suffix: 4,
        },
        ("national id", "S") => Strategy::Hash,
        ("secret", "S") | ("ip address", "S") => {
            if not_null {
                Strategy::Hash
            } else {
                Strategy::Null
            }
        }
        ("ip address", "I") if !not_null => Strategy::Null,
        ("ip address", "I") => Strategy::Constant("0.0.0.0".into()),
        ("birth date", "D") if !not_null => Strategy::Null,
        ("birth date", "D") => Strategy::Constant("1900-01-01".into()),
        ("birth date", "S") => Strategy::Name,
        ("salary", "N") if !not_null => Strategy::Null,
        ("salary", "N") => Strategy::RandomInt {
            min: 1000,
            max: 9999,
        },
        _ => return None,
    };
    Some(Finding { kind, strategy })
}

/// Kinds a column's values show, by a regular expression the source runs
/// (only counts come back: sampled values never leave the source).
const VALUE_KINDS: &[(&str, &str)] = &[
    ("email", r"^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$"),
    ("phone", r"^\+?[0-9][0-9 ().-]{6,19}$"),
    ("ip address", r"^[0-9]{1,3}(\.[0-9]{1,3}){3}$"),
    ("card number", r"^[0-9]{4}([ -]?[0-9]{4}){2,3}[0-9]{0,3}$"),
    ("bank account", r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$"),
];

/// Fewer sampled values than this tell nothing.
const SAMPLE_MIN: i64 = 5;

/// A count of a sample: the column's index, and the kind whose pattern it
/// counts (None: the values present).
pub type SampleCell = (usize, Option<&'static str>);

/// A query over the first `rows` rows of a table that counts, for each of
/// its text columns, the values present and those that look like each
/// kind; and the (column index, kind or None for "present") of each count.
pub fn sample_sql(t: &TableDef, rows: i64) -> Option<(String, Vec<SampleCell>)> {
    let cols: Vec<usize> = (0..t.columns.len())
        .filter(|i| t.columns[*i].type_facts.category == "S" && t.columns[*i].generated.is_none())
        .collect();
    if cols.is_empty() {
        return None;
    }
    let mut counts = Vec::new();
    let mut cells = Vec::new();
    let mut inner = Vec::new();
    for (k, i) in cols.iter().enumerate() {
        let c = format!("c{k}");
        inner.push(format!("{}::text AS {c}", quote_ident(&t.columns[*i].name)));
        counts.push(format!("count({c})"));
        cells.push((*i, None));
        for (kind, re) in VALUE_KINDS {
            counts.push(format!(
                "count(*) FILTER (WHERE {c} OPERATOR(pg_catalog.~) {})",
                quote_literal(re)
            ));
            cells.push((*i, Some(*kind)));
        }
    }
    let sql = format!(
        "SELECT {} FROM (SELECT {} FROM ONLY {} LIMIT {rows}) s",
        counts.join(", "),
        inner.join(", "),
        qualified(&t.schema, &t.name)
    );
    Some((sql, cells))
}

/// What a sample says of a column that its name flags as `named` (or
/// not): Some(kind) when it is sensitive, None when not. A name whose kind
/// has a value pattern is kept only if half the sampled values match; a
/// column its name does not flag is flagged when four in five match a kind.
pub fn judge(
    named: Option<&'static str>,
    present: i64,
    matches: &[(&'static str, i64)],
) -> Option<&'static str> {
    if present < SAMPLE_MIN {
        return named;
    }
    let ratio = |n: i64| n as f64 / present as f64;
    match named {
        Some(k) => match matches.iter().find(|(kind, _)| *kind == k) {
            Some((_, n)) if ratio(*n) < 0.5 => None,
            _ => Some(k),
        },
        None => matches
            .iter()
            .filter(|(_, n)| ratio(*n) >= 0.8)
            .max_by_key(|(_, n)| *n)
            .map(|(k, _)| *k),
    }
}

/// How pgclone 4.x's masking_report names a kind (scripts compare with it).
pub fn label(kind: &str) -> &'static str {
    match kind {
        "email" => "PII - Email",
        "name" => "PII - Name",
        "phone" => "PII - Phone",
        "address" => "PII - Address",
        "birth date" => "PII - Date of Birth",
        "ip address" => "PII - IP Address",
        "national id" => "National ID",
        "card number" => "Financial - Card Number",
        "bank account" => "Financial - Bank Account",
        "salary" => "Financial - Salary",
        "secret" => "Credential",
        _ => "Sensitive",
    }
}

/// What a sample's counts (the row of `sample_sql`, in the order of its
/// cells) say of each sampled column: `judge` over what its name says.
pub fn verdicts(
    t: &TableDef,
    cells: &[SampleCell],
    counts: &[i64],
) -> Vec<(String, Option<&'static str>)> {
    let mut out = Vec::new();
    let mut k = 0;
    while k < cells.len().min(counts.len()) {
        let (col, _) = cells[k];
        let present = counts[k];
        let mut matches = Vec::new();
        k += 1;
        while k < cells.len().min(counts.len()) && cells[k].0 == col {
            matches.extend(cells[k].1.map(|kind| (kind, counts[k])));
            k += 1;
        }
        let name = &t.columns[col].name;
        out.push((name.clone(), judge(kind_of(name), present, &matches)));
    }
    out
}

/// A strategy as the `mask` option writes it.
pub fn to_json(s: &Strategy) -> serde_json::Value {
    use serde_json::json;
    match s {
        Strategy::Partial { prefix, suffix } => {
            json!({"type": "partial", "prefix": prefix, "suffix": suffix})
        }
        Strategy::RandomInt { min, max } => json!({"type": "random_int", "min": min, "max": max}),
        Strategy::Constant(v) => json!({"type": "constant", "value": v}),
        other => json!(other.name()),
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn facts(category: &str) -> TypeFacts {
        TypeFacts {
            category: category.into(),
            ..TypeFacts::default()
        }
    }

    #[test]
    fn names_split_into_words() {
        assert_eq!(words("customerEmail"), ["customer", "email"]);
        assert_eq!(words("IP_Address"), ["ip", "address"]);
        assert_eq!(words("date-of birth"), ["date", "of", "birth"]);
    }

    #[test]
    fn sensitive_names_of_a_fitting_type_are_found() {
        let s = facts("S");
        for (name, kind) in [
            ("email", "email"),
            ("customer_email", "email"),
            ("first_name", "name"),
            ("lastName", "name"),
            ("surname", "name"),
            ("phone", "phone"),
            ("mobile_phone", "phone"),
            ("ssn", "national id"),
            ("passport_number", "national id"),
            ("credit_card", "card number"),
            ("iban", "bank account"),
            ("home_address", "address"),
            ("postal_code", "address"),
            ("password_hash", "secret"),
            ("api_key", "secret"),
            ("client_ip", "ip address"),
        ] {
            assert_eq!(
                classify(name, &s, false).map(|f| f.kind),
                Some(kind),
                "{name}"
            );
        }
        assert_eq!(
            classify("birth_date", &facts("D"), false).unwrap().kind,
            "birth date"
        );
        assert_eq!(
            classify("dob", &facts("D"), true).unwrap().strategy,
            Strategy::Constant("1900-01-01".into())
        );
        assert_eq!(
            classify("salary", &facts("N"), false).unwrap().strategy,
            Strategy::Null
        );
        assert_eq!(
            classify("last_login_ip", &facts("I"), false).unwrap().kind,
            "ip address"
        );
    }

    #[test]
    fn look_alikes_are_left_alone() {
        let s = facts("S");
        for name in [
            "classname",
            "description",
            "session_timeout",
            "pipeline",
            "tipo",
            "shipping_method",
            "address_type",
            "email_count",
            "is_email_verified",
            "has_phone",
            "token_expires",
            "password_changed_at",
            "zip_format",
            "username",
            "name",
            "product_name",
            "company",
            "mailbox_size",
            "dobby",
            "ipsum",
        ] {
            assert_eq!(classify(name, &s, false), None, "{name}");
        }
        // The type must fit: a flag, a count, a number named like text.
        assert_eq!(classify("email", &facts("B"), false), None);
        assert_eq!(classify("phone", &facts("N"), false), None);
        assert_eq!(classify("salary", &s, false), None);
    }

    #[test]
    fn samples_confirm_or_correct_names() {
        // Named email, and the values agree.
        assert_eq!(judge(Some("email"), 10, &[("email", 9)]), Some("email"));
        // Named phone, the values are something else.
        assert_eq!(judge(Some("phone"), 10, &[("phone", 1)]), None);
        // Named a kind without a value pattern: the name stands.
        assert_eq!(judge(Some("name"), 10, &[("email", 0)]), Some("name"));
        // Not named, but the values are emails.
        assert_eq!(
            judge(None, 10, &[("email", 9), ("phone", 0)]),
            Some("email")
        );
        assert_eq!(judge(None, 10, &[("email", 5)]), None);
        // Too few values to tell.
        assert_eq!(judge(Some("phone"), 3, &[("phone", 0)]), Some("phone"));
        assert_eq!(judge(None, 3, &[("email", 3)]), None);
    }

    #[test]
    fn the_sample_counts_each_text_column() {
        let mut t = crate::catalog::fixture::table("s", "t");
        t.columns[1].type_facts = facts("S");
        let (sql, cells) = sample_sql(&t, 100).unwrap();
        assert_eq!(cells.len(), 1 + VALUE_KINDS.len());
        assert!(sql.contains("FROM ONLY \"s\".\"t\" LIMIT 100"), "{sql}");
        assert!(sql.contains("\"note\"::text AS c0"), "{sql}");
        assert!(sql.contains("OPERATOR(pg_catalog.~) E'^[^@"), "{sql}");
        // Counts back: 10 values in "note", 9 of them emails.
        let mut counts = vec![10, 9];
        counts.resize(cells.len(), 0);
        assert_eq!(
            verdicts(&t, &cells, &counts),
            [("note".to_string(), Some("email"))]
        );
    }
}
