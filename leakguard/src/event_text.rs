//! Where a match event says a number was, in words safe to print: the log
//! (`daemon::events`) and `audit` say it the same way.
//!
//! An event never carries a value, but its name is bytes the kernel copied from the
//! request: treated as untrusted text. A header name is printed only when it is made of
//! token bytes (as the kernel folded it); a request target's part (`path`, `query:NAME`)
//! or a cookie's (`cookie:NAME`, `cookie`) has every digit shown as `#` (the kernel does
//! so already; done again here so that no digit of a query or cookie name can reach a
//! line) and every byte that is not printable ASCII escaped.

use leakguard_common::{form, place, Event};

/// Where an identity-number match was.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum NumberAt {
    /// A header value; the header's folded name, or "(unprintable)".
    Header(String),
    /// The request target; `path` or `query:NAME` (see [`masked_part`]).
    Target(String),
    /// A `Cookie` header's value; `cookie:NAME` (the pair's name) or `cookie` (see
    /// [`masked_part`]).
    Cookie(String),
    /// A place this build does not know (a newer kernel object).
    Unknown(u8),
}

impl NumberAt {
    /// The place of `e`, a number match (`MSISDN_RULE_ID`), with its name.
    #[must_use]
    pub fn of(e: &Event) -> Self {
        let len = (e.name_len as usize).min(e.name.name.len());
        let name = &e.name.name[..len];
        // The low nibble is the place; the high one the form (see [`form_of`]).
        match place::of(e.place) {
            place::HEADER => Self::Header(header_name(name)),
            place::TARGET => Self::Target(masked_part(name)),
            place::COOKIE => Self::Cookie(masked_part(name)),
            p => Self::Unknown(p),
        }
    }

    /// The metric label of the place (`header`, `target`, `cookie`, `unknown`).
    #[must_use]
    pub fn place(&self) -> &'static str {
        match self {
            Self::Header(_) => place::name(place::HEADER),
            Self::Target(_) => place::name(place::TARGET),
            Self::Cookie(_) => place::name(place::COOKIE),
            Self::Unknown(p) => place::name(*p),
        }
    }
}

/// How the number of `e`, a number match, was written: `form::DECIMAL`, `form::HEX` or
/// `form::BASE64` (another value from a newer kernel object names itself "unknown" by
/// `form::name`).
#[must_use]
pub const fn form_of(e: &Event) -> u8 {
    form::of(e.place)
}

/// A folded header name when it is token bytes only, else "(unprintable)".
#[must_use]
pub fn header_name(name: &[u8]) -> String {
    if name.is_empty() || !name.iter().all(|&b| leakguard_common::name::is_tchar(b)) {
        return "(unprintable)".into();
    }
    String::from_utf8_lossy(name).into_owned()
}

/// The part of a request target (`path`, `query:NAME`) or of a cookie (`cookie:NAME`,
/// `cookie`) an event names: digits as `#`, bytes other than printable ASCII escaped
/// (`\xNN`), quotes and backslashes too.
#[must_use]
pub fn masked_part(name: &[u8]) -> String {
    if name.is_empty() {
        return "(unnamed)".into();
    }
    let mut s = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_digit() {
            s.push('#');
        } else {
            s.extend(std::ascii::escape_default(b).map(char::from));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use leakguard_common::{NameKey, MAX_NAME_LEN, MSISDN_RULE_ID};

    fn event(place: u8, name: &[u8]) -> Event {
        let mut key = NameKey {
            name: [0; MAX_NAME_LEN],
        };
        key.name[..name.len()].copy_from_slice(name);
        let mut e = Event::from_record(&[0; core::mem::size_of::<Event>()]).unwrap();
        e.rule_id = MSISDN_RULE_ID;
        e.place = place;
        e.name_len = name.len() as u32;
        e.name = key;
        e
    }

    #[test]
    fn places_and_names_print_without_digits_or_control_bytes() {
        assert_eq!(
            NumberAt::of(&event(place::HEADER, b"x-phone")),
            NumberAt::Header("x-phone".into())
        );
        assert_eq!(
            NumberAt::of(&event(place::HEADER, b"x phone")),
            NumberAt::Header("(unprintable)".into())
        );
        assert_eq!(
            NumberAt::of(&event(place::TARGET, b"path")),
            NumberAt::Target("path".into())
        );
        assert_eq!(
            NumberAt::of(&event(place::TARGET, b"query:msisdn")),
            NumberAt::Target("query:msisdn".into())
        );
        // A name the kernel did not mask, or mangled: still no digit, no raw byte.
        let odd = NumberAt::of(&event(place::TARGET, b"query:u4477\n\x1b[\"\\"));
        assert_eq!(odd, NumberAt::Target("query:u####\\n\\x1b[\\\"\\\\".into()));
        assert_eq!(odd.place(), "target");
        assert_eq!(
            NumberAt::of(&event(place::TARGET, b"")),
            NumberAt::Target("(unnamed)".into())
        );
        assert_eq!(
            NumberAt::of(&event(place::COOKIE, b"cookie:msisdn")),
            NumberAt::Cookie("cookie:msisdn".into())
        );
        assert_eq!(
            NumberAt::of(&event(place::COOKIE, b"cookie")),
            NumberAt::Cookie("cookie".into())
        );
        // A cookie name is the client's bytes: digits masked, the rest escaped.
        let odd = NumberAt::of(&event(place::COOKIE, b"cookie:s1d_447 \x7f\xff'\""));
        assert_eq!(
            odd,
            NumberAt::Cookie("cookie:s#d_### \\x7f\\xff\\'\\\"".into())
        );
        assert_eq!(odd.place(), "cookie");
        assert_eq!(
            NumberAt::of(&event(place::COOKIE, b"")),
            NumberAt::Cookie("(unnamed)".into())
        );
        assert_eq!(NumberAt::of(&event(7, b"path")), NumberAt::Unknown(7));
    }

    /// The place byte's high nibble is the form: the place is read from the low one,
    /// and the form apart.
    #[test]
    fn a_hex_number_keeps_its_place_and_says_its_form() {
        let hex = |p| place::with_form(p, form::HEX);
        let cookie = event(hex(place::COOKIE), b"cookie:uid");
        assert_eq!(NumberAt::of(&cookie), NumberAt::Cookie("cookie:uid".into()));
        assert_eq!(form::name(form_of(&cookie)), "hex");
        let target = event(hex(place::TARGET), b"query:u");
        assert_eq!(NumberAt::of(&target).place(), "target");
        let header = event(hex(place::HEADER), b"x-phone");
        assert_eq!(NumberAt::of(&header), NumberAt::Header("x-phone".into()));
        let decimal = event(place::COOKIE, b"cookie:uid");
        assert_eq!(form::name(form_of(&decimal)), "decimal");
        // Form 3 is none yet: a newer kernel object's, "unknown".
        assert_eq!(form::name(form_of(&event(0x37, b"path"))), "unknown");
        assert_eq!(NumberAt::of(&event(0x37, b"path")), NumberAt::Unknown(7));
    }

    /// Base64 likewise: its own form, the place from the low nibble.
    #[test]
    fn a_base64_number_keeps_its_place_and_says_its_form() {
        let b64 = |p| place::with_form(p, form::BASE64);
        let cookie = event(b64(place::COOKIE), b"cookie:uid");
        assert_eq!(NumberAt::of(&cookie), NumberAt::Cookie("cookie:uid".into()));
        assert_eq!(form::name(form_of(&cookie)), "base64");
        let target = event(b64(place::TARGET), b"query:u");
        assert_eq!(NumberAt::of(&target), NumberAt::Target("query:u".into()));
        let header = event(b64(place::HEADER), b"referer");
        assert_eq!(NumberAt::of(&header), NumberAt::Header("referer".into()));
        assert_eq!(NumberAt::of(&event(0x27, b"path")), NumberAt::Unknown(7));
    }
}
