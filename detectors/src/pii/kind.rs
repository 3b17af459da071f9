//! The kinds of sensitive data this crate knows and their classification
//! tags. Owns the tag strings: they are the names the classification file
//! (`docs/policy.md`, "Classification file") and policy rules (`tags = [...]`)
//! use, so a rename here is a breaking change for every deployed policy.

use std::fmt;

/// A kind of sensitive data.
///
/// Nine kinds have a content validator and are found in values by
/// [`crate::pii::Scanner`]; [`Kind::Name`] and [`Kind::Address`] have no
/// reliable content form (a Chinese name is two to four ordinary characters)
/// and are only ever inferred from column names by
/// [`crate::pii::classify_column`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Kind {
    /// PRC resident identity number (公民身份号码), `pii.id_number`.
    IdNumber,
    /// Mainland mobile number (手机号), `pii.phone`.
    Phone,
    /// Payment card number (银行卡号), `finance.bank_card`.
    BankCard,
    /// Unified social credit code of an organisation (统一社会信用代码),
    /// `org.credit_code`.
    CreditCode,
    /// E-mail address, `pii.email`.
    Email,
    /// PRC passport number (护照号码), `pii.passport`.
    Passport,
    /// Mainland travel permit to Hong Kong and Macao (往来港澳通行证),
    /// `pii.travel_permit`.
    TravelPermit,
    /// IPv4 or IPv6 address, `net.ip`.
    Ip,
    /// Motor-vehicle licence plate (机动车号牌), `pii.plate`.
    Plate,
    /// A person's name (姓名), `pii.name`: column names only.
    Name,
    /// A postal or home address (地址), `pii.address`: column names only.
    Address,
}

impl Kind {
    /// Number of kinds.
    pub const COUNT: usize = 11;

    /// Every kind, in declaration order.
    pub const ALL: [Kind; Kind::COUNT] = [
        Kind::IdNumber,
        Kind::Phone,
        Kind::BankCard,
        Kind::CreditCode,
        Kind::Email,
        Kind::Passport,
        Kind::TravelPermit,
        Kind::Ip,
        Kind::Plate,
        Kind::Name,
        Kind::Address,
    ];

    /// The kinds the scanner can find in a value.
    pub const DETECTABLE: [Kind; 9] = [
        Kind::IdNumber,
        Kind::Phone,
        Kind::BankCard,
        Kind::CreditCode,
        Kind::Email,
        Kind::Passport,
        Kind::TravelPermit,
        Kind::Ip,
        Kind::Plate,
    ];

    /// The classification tag: `area.what`, letters, digits, `.` and `_`
    /// only, as the classification file requires.
    pub const fn tag(self) -> &'static str {
        match self {
            Kind::IdNumber => "pii.id_number",
            Kind::Phone => "pii.phone",
            Kind::BankCard => "finance.bank_card",
            Kind::CreditCode => "org.credit_code",
            Kind::Email => "pii.email",
            Kind::Passport => "pii.passport",
            Kind::TravelPermit => "pii.travel_permit",
            Kind::Ip => "net.ip",
            Kind::Plate => "pii.plate",
            Kind::Name => "pii.name",
            Kind::Address => "pii.address",
        }
    }

    /// The kind whose [`Kind::tag`] is exactly `tag`.
    pub fn from_tag(tag: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.tag() == tag)
    }

    /// Whether the scanner can find this kind in a value.
    pub const fn is_detectable(self) -> bool {
        !matches!(self, Kind::Name | Kind::Address)
    }

    /// Position in [`Kind::ALL`] (and in [`crate::pii::Counts`]).
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.tag())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_round_trip_and_are_classification_safe() {
        for (i, k) in Kind::ALL.into_iter().enumerate() {
            assert_eq!(k.index(), i);
            assert_eq!(Kind::from_tag(k.tag()), Some(k));
            assert_eq!(k.to_string(), k.tag());
            assert!(k
                .tag()
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'));
        }
        assert_eq!(Kind::from_tag("pii.*"), None);
        assert!(Kind::DETECTABLE.iter().all(|k| k.is_detectable()));
        assert!(!Kind::Name.is_detectable() && !Kind::Address.is_detectable());
    }
}
