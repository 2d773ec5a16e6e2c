//! Which columns hold personal or secret data, by name and type: what
//! `discover_sensitive` proposes, `require_masks` insists on and
//! `masking_report` shows. Pure.
//!
//! A name is split into words (`_`, `-`, spaces, camelCase), and a kind
//! matches whole words or word pairs, never substrings: `classname` holds no
//! `ssn`, `pipeline` no `ip`. The type must fit the kind too: a boolean
//! `is_email_verified` or an integer `email_count` is not an email.

use crate::mask::{Strategy, TypeFacts};

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

fn kind_of(name: &str) -> Option<&'static str> {
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
    let kind = kind_of(name)?;
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
}
