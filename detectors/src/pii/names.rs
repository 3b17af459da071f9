//! The column-name classifier: which kind of sensitive data a column's
//! *name* suggests. Owns the keyword dictionaries and the matching rules.
//! Pure, no panics; allocates (it runs once per column, not per value).
//!
//! It is evidence, not proof: discovery combines it with the scanner's hit
//! rate on sampled values (a `phone` column whose values are all phone
//! numbers), and it is the *only* evidence for names and addresses, which
//! have no content validator, and the main evidence for passports and travel
//! permits, which have no check digit.
//!
//! # Matching
//!
//! 1. **Chinese** keywords (身份证号, 手机号, 姓名, …) match as substrings of
//!    the name, longest and most specific first (联系电话 before 电话,
//!    邮箱地址 is an e-mail, not an address).
//! 2. Otherwise the name is split into lower-case **tokens** at every
//!    character that is not an ASCII letter or digit and at camel-case
//!    boundaries (`idCardNo`, `IDCard_no`, `user-mobile` → `id card no`,
//!    `id card no`, `user mobile`). English keywords (`id_card`, `mobile`,
//!    `email`, …) and pinyin initials (`sfzh`, `sjhm`, `xm`, …) must match
//!    whole tokens, contiguous for multi-word keywords: `xm` matches `xm`
//!    and `user_xm`, never `xml`; `tel` matches `tel_no`, not `hotel`. A
//!    token's trailing digits are ignored (`phone2`, `email_1`).
//!    Keywords are tried in a fixed priority order: ID number, passport,
//!    travel permit, credit code, bank card, phone, e-mail, IP, plate,
//!    address, name; so `id_card_no` is an ID number (not a card number) and
//!    `ip_address` an IP (not an address).
//!
//! # What does not match, and why
//!
//! * **Columns *about* a value rather than holding it**: when the last
//!   token comes after the keyword and is one of `verified`, `flag`,
//!   `count`, `at`, `time`, `date`, `id`, `type`, `status`, `hash`,
//!   `version`, `app`, `device`, `model`, `code`, … (see `SUFFIX_EXCLUDE`):
//!   `email_verified`, `phone_count`, `id_card_type`, `phone_hash`,
//!   `mobile_app_version` (a mobile *app*, not a number). A leading
//!   `is_`/`has_`/`num_`… does the same (`is_mobile`, `has_email`).
//!   Chinese names containing 是否, 状态, 数量, 时间, 类型, 型号, 验证, …
//!   likewise.
//! * **`…_id` columns**: `user_id`, `card_id` are keys, not ID numbers;
//!   there is no bare `id` keyword, and `id` as a last token excludes.
//!   `citizen_id` is the exception (the keyword ends there).
//! * **`name`** alone is too common (`file_name`, `table_name`,
//!   `product_name`, `user_name` — a login): it matches only as the whole
//!   name, after a person word (`real`, `full`, `first`, `last`, `customer`,
//!   `contact`, `patient`, `owner`, … — `PERSON_WORDS`), or first and
//!   followed only by a language suffix (`name_cn`, `name_en`).
//! * **`address`/`addr`** after `mac`, `ip`, `email`, `web`, `url`, `server`,
//!   `wallet`, … (`NON_POSTAL`) is not a postal address.
//! * **账号** alone is a login account as often as a bank account: it is a
//!   card number only if the name does not also say 用户, 登录, 系统, 管理员
//!   or 操作员; `account_no` likewise tags a bank card (the scanner's Luhn
//!   check then decides).

use super::Kind;

/// How a keyword's context is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    Plain,
    /// `name`: see the module docs.
    PersonName,
    /// `address`: not after a `NON_POSTAL` word.
    Postal,
}

struct Keyword {
    words: &'static [&'static str],
    kind: Kind,
    shown: &'static str,
    rule: Rule,
}

const fn kw(words: &'static [&'static str], kind: Kind, shown: &'static str) -> Keyword {
    Keyword {
        words,
        kind,
        shown,
        rule: Rule::Plain,
    }
}

const fn kw_rule(
    words: &'static [&'static str],
    kind: Kind,
    shown: &'static str,
    rule: Rule,
) -> Keyword {
    Keyword {
        words,
        kind,
        shown,
        rule,
    }
}

/// English and pinyin keywords, in priority order.
const KEYWORDS: &[Keyword] = &[
    // ID number
    kw(&["id", "card"], Kind::IdNumber, "id_card"),
    kw(&["idcard"], Kind::IdNumber, "idcard"),
    kw(&["id", "number"], Kind::IdNumber, "id_number"),
    kw(&["idnumber"], Kind::IdNumber, "idnumber"),
    kw(&["id", "no"], Kind::IdNumber, "id_no"),
    kw(&["idno"], Kind::IdNumber, "idno"),
    kw(&["id", "num"], Kind::IdNumber, "id_num"),
    kw(&["identity"], Kind::IdNumber, "identity"),
    kw(&["citizen", "id"], Kind::IdNumber, "citizen_id"),
    kw(&["cert", "no"], Kind::IdNumber, "cert_no"),
    kw(&["certificate", "no"], Kind::IdNumber, "certificate_no"),
    kw(
        &["certificate", "number"],
        Kind::IdNumber,
        "certificate_number",
    ),
    // China's social security number is the ID number.
    kw(&["ssn"], Kind::IdNumber, "ssn"),
    kw(&["sfzh"], Kind::IdNumber, "sfzh"),
    kw(&["sfzhm"], Kind::IdNumber, "sfzhm"),
    kw(&["sfz"], Kind::IdNumber, "sfz"),
    kw(&["zjhm"], Kind::IdNumber, "zjhm"),
    kw(&["gmsfhm"], Kind::IdNumber, "gmsfhm"),
    // Passport
    kw(&["passport"], Kind::Passport, "passport"),
    kw(&["hzhm"], Kind::Passport, "hzhm"),
    kw(&["hzh"], Kind::Passport, "hzh"),
    // Travel permit
    kw(&["travel", "permit"], Kind::TravelPermit, "travel_permit"),
    kw(&["permit", "no"], Kind::TravelPermit, "permit_no"),
    kw(&["txzhm"], Kind::TravelPermit, "txzhm"),
    kw(&["gatxz"], Kind::TravelPermit, "gatxz"),
    // Credit code
    kw(&["credit", "code"], Kind::CreditCode, "credit_code"),
    kw(&["uscc"], Kind::CreditCode, "uscc"),
    kw(&["tyshxydm"], Kind::CreditCode, "tyshxydm"),
    // Bank card
    kw(&["bank", "card"], Kind::BankCard, "bank_card"),
    kw(&["bankcard"], Kind::BankCard, "bankcard"),
    kw(&["card", "no"], Kind::BankCard, "card_no"),
    kw(&["cardno"], Kind::BankCard, "cardno"),
    kw(&["card", "number"], Kind::BankCard, "card_number"),
    kw(&["account", "no"], Kind::BankCard, "account_no"),
    kw(&["account", "number"], Kind::BankCard, "account_number"),
    kw(&["acct", "no"], Kind::BankCard, "acct_no"),
    kw(&["iban"], Kind::BankCard, "iban"),
    kw(&["yhkh"], Kind::BankCard, "yhkh"),
    kw(&["yhk"], Kind::BankCard, "yhk"),
    kw(&["yhzh"], Kind::BankCard, "yhzh"),
    // Phone
    kw(&["mobile"], Kind::Phone, "mobile"),
    kw(&["mobileno"], Kind::Phone, "mobileno"),
    kw(&["mobilephone"], Kind::Phone, "mobilephone"),
    kw(&["phone"], Kind::Phone, "phone"),
    kw(&["phoneno"], Kind::Phone, "phoneno"),
    kw(&["phonenumber"], Kind::Phone, "phonenumber"),
    kw(&["cellphone"], Kind::Phone, "cellphone"),
    kw(&["telephone"], Kind::Phone, "telephone"),
    kw(&["tel"], Kind::Phone, "tel"),
    kw(&["telno"], Kind::Phone, "telno"),
    kw(&["sjhm"], Kind::Phone, "sjhm"),
    kw(&["sjh"], Kind::Phone, "sjh"),
    kw(&["lxdh"], Kind::Phone, "lxdh"),
    kw(&["dh"], Kind::Phone, "dh"),
    // E-mail
    kw(&["email"], Kind::Email, "email"),
    kw(&["emailaddress"], Kind::Email, "emailaddress"),
    kw(&["mail"], Kind::Email, "mail"),
    kw(&["mailbox"], Kind::Email, "mailbox"),
    kw(&["dzyx"], Kind::Email, "dzyx"),
    // IP
    kw(&["ip", "addr"], Kind::Ip, "ip_addr"),
    kw(&["ip", "address"], Kind::Ip, "ip_address"),
    kw(&["ip"], Kind::Ip, "ip"),
    kw(&["ipaddr"], Kind::Ip, "ipaddr"),
    kw(&["ipaddress"], Kind::Ip, "ipaddress"),
    kw(&["ipv4"], Kind::Ip, "ipv4"),
    kw(&["ipv6"], Kind::Ip, "ipv6"),
    // Plate
    kw(&["license", "plate"], Kind::Plate, "license_plate"),
    kw(&["licence", "plate"], Kind::Plate, "licence_plate"),
    kw(&["plate"], Kind::Plate, "plate"),
    kw(&["plateno"], Kind::Plate, "plateno"),
    kw(&["cph"], Kind::Plate, "cph"),
    // Address
    kw_rule(&["address"], Kind::Address, "address", Rule::Postal),
    kw_rule(&["addr"], Kind::Address, "addr", Rule::Postal),
    kw(&["homeaddress"], Kind::Address, "homeaddress"),
    kw(&["dz"], Kind::Address, "dz"),
    kw(&["zz"], Kind::Address, "zz"),
    // Name
    kw(&["full", "name"], Kind::Name, "full_name"),
    kw(&["fullname"], Kind::Name, "fullname"),
    kw(&["real", "name"], Kind::Name, "real_name"),
    kw(&["realname"], Kind::Name, "realname"),
    kw(&["xm"], Kind::Name, "xm"),
    kw_rule(&["name"], Kind::Name, "name", Rule::PersonName),
];

/// Last tokens that make a column *about* the keyword's value.
const SUFFIX_EXCLUDE: &[&str] = &[
    "verified",
    "verify",
    "verification",
    "confirmed",
    "flag",
    "flags",
    "count",
    "cnt",
    "at",
    "time",
    "date",
    "id",
    "ids",
    "type",
    "kind",
    "status",
    "state",
    "valid",
    "enabled",
    "len",
    "length",
    "hash",
    "md5",
    "sha1",
    "sha256",
    "digest",
    "version",
    "app",
    "device",
    "model",
    "brand",
    "os",
    "platform",
    "operator",
    "carrier",
    "code",
    "region",
    "server",
    "host",
    "port",
    "domain",
    "template",
    "subject",
    "content",
    "body",
    "title",
    "format",
    "pattern",
    "regex",
    "rule",
    "prefix",
    "suffix",
    "color",
    "colour",
    "level",
    "score",
    "config",
    "setting",
    "settings",
    "policy",
    "sent",
    "notify",
    "notification",
    "key",
    "token",
    "url",
];

/// First tokens that make a column about the keyword's value.
const PREFIX_EXCLUDE: &[&str] = &[
    "is", "has", "can", "allow", "enable", "need", "num", "count", "cnt", "total", "max", "min",
];

/// Words before `name` that make it a person's name.
const PERSON_WORDS: &[&str] = &[
    "real",
    "full",
    "first",
    "last",
    "given",
    "family",
    "middle",
    "person",
    "personal",
    "customer",
    "cust",
    "client",
    "contact",
    "patient",
    "applicant",
    "owner",
    "holder",
    "employee",
    "emp",
    "staff",
    "student",
    "teacher",
    "citizen",
    "resident",
    "member",
    "legal",
    "father",
    "mother",
    "spouse",
    "guardian",
    "driver",
    "passenger",
    "recipient",
    "receiver",
    "consignee",
    "sender",
    "buyer",
    "doctor",
    "victim",
    "suspect",
    "visitor",
    "worker",
    "farmer",
    "child",
    "parent",
    "cardholder",
    "account",
    "payer",
    "payee",
    "chinese",
    "english",
];

/// Tokens after a leading `name` that keep it a person's name.
const NAME_SUFFIXES: &[&str] = &[
    "cn", "en", "zh", "py", "pinyin", "full", "chinese", "english",
];

/// Words before `address`/`addr` that make it not a postal address.
const NON_POSTAL: &[&str] = &[
    "mac",
    "ip",
    "email",
    "mail",
    "web",
    "website",
    "url",
    "server",
    "host",
    "memory",
    "mem",
    "wallet",
    "contract",
    "bluetooth",
    "bt",
    "wifi",
    "remote",
    "local",
    "bind",
    "listen",
    "proxy",
    "gateway",
    "net",
    "network",
    "socket",
    "hardware",
    "hw",
    "broadcast",
    "multicast",
    "link",
    "callback",
    "redirect",
];

/// Chinese keywords, in priority order.
const CHINESE: &[(&str, Kind)] = &[
    ("统一社会信用代码", Kind::CreditCode),
    ("社会信用代码", Kind::CreditCode),
    ("信用代码", Kind::CreditCode),
    ("公民身份号码", Kind::IdNumber),
    ("身份证号码", Kind::IdNumber),
    ("身份证号", Kind::IdNumber),
    ("身份证", Kind::IdNumber),
    ("证件号码", Kind::IdNumber),
    ("证件号", Kind::IdNumber),
    ("护照号码", Kind::Passport),
    ("护照号", Kind::Passport),
    ("护照", Kind::Passport),
    ("港澳通行证", Kind::TravelPermit),
    ("通行证号", Kind::TravelPermit),
    ("通行证", Kind::TravelPermit),
    ("银行卡号", Kind::BankCard),
    ("银行卡", Kind::BankCard),
    ("银行账号", Kind::BankCard),
    ("银行帐号", Kind::BankCard),
    ("手机号码", Kind::Phone),
    ("手机号", Kind::Phone),
    ("联系电话", Kind::Phone),
    ("电话号码", Kind::Phone),
    ("手机", Kind::Phone),
    ("电话", Kind::Phone),
    ("电子邮箱", Kind::Email),
    ("电子邮件", Kind::Email),
    ("邮箱", Kind::Email),
    ("ip地址", Kind::Ip),
    ("车牌号码", Kind::Plate),
    ("车牌号", Kind::Plate),
    ("号牌号码", Kind::Plate),
    ("车牌", Kind::Plate),
    ("地址", Kind::Address),
    ("住址", Kind::Address),
    ("住所", Kind::Address),
    ("姓名", Kind::Name),
    ("名字", Kind::Name),
    ("账号", Kind::BankCard),
    ("帐号", Kind::BankCard),
];

/// Chinese words that make a column about the value.
const CHINESE_EXCLUDE: &[&str] = &[
    "是否",
    "状态",
    "数量",
    "次数",
    "个数",
    "时间",
    "日期",
    "类型",
    "型号",
    "品牌",
    "标志",
    "验证",
    "长度",
    "格式",
    "归属地",
];

/// Words that make 账号 a login account.
const LOGIN_ACCOUNT: &[&str] = &["用户", "登录", "登陆", "系统", "管理员", "操作员"];

/// The kind of sensitive data a column called `name` probably holds, and
/// the dictionary keyword that matched (`"id_card"`, `"手机号"`, `"xm"`).
pub fn classify_column(name: &str) -> Option<(Kind, &'static str)> {
    let tokens = tokenize(name);
    let tokens: Vec<&str> = tokens.iter().map(String::as_str).collect();
    if !name.is_ascii() {
        if let Some(hit) = chinese(name, &tokens) {
            return Some(hit);
        }
    }
    english(&tokens)
}

fn chinese(name: &str, tokens: &[&str]) -> Option<(Kind, &'static str)> {
    let lower = name.to_ascii_lowercase();
    if CHINESE_EXCLUDE.iter().any(|w| lower.contains(w)) {
        return None;
    }
    // `手机号_hash`: an ASCII suffix after the Chinese keyword excludes too.
    let ends_ascii = lower
        .trim_end_matches(|c: char| !c.is_ascii_alphanumeric() && c.is_ascii())
        .ends_with(|c: char| c.is_ascii_alphanumeric());
    if ends_ascii && tokens.last().is_some_and(|t| SUFFIX_EXCLUDE.contains(t)) {
        return None;
    }
    let (word, kind) = CHINESE.iter().find(|(w, _)| lower.contains(w))?;
    let account = *word == "账号" || *word == "帐号";
    if account && LOGIN_ACCOUNT.iter().any(|w| lower.contains(w)) {
        return None;
    }
    Some((*kind, word))
}

fn english(tokens: &[&str]) -> Option<(Kind, &'static str)> {
    for k in KEYWORDS {
        let n = k.words.len();
        if n == 0 || n > tokens.len() {
            continue;
        }
        for p in 0..=tokens.len() - n {
            let window = tokens.get(p..p + n).unwrap_or_default();
            if !k.words.iter().zip(window).all(|(w, t)| token_is(t, w)) {
                continue;
            }
            if !excluded(tokens, p, p + n) && rule_holds(k.rule, tokens, p, p + n) {
                return Some((k.kind, k.shown));
            }
        }
    }
    None
}

/// `t` is `word`, possibly with trailing digits (`phone2`).
fn token_is(t: &str, word: &str) -> bool {
    t == word || t.trim_end_matches(|c: char| c.is_ascii_digit()) == word
}

fn excluded(tokens: &[&str], start: usize, end: usize) -> bool {
    let suffix = end < tokens.len() && tokens.last().is_some_and(|t| SUFFIX_EXCLUDE.contains(t));
    let prefix = start > 0 && tokens.first().is_some_and(|t| PREFIX_EXCLUDE.contains(t));
    suffix || prefix
}

fn rule_holds(rule: Rule, tokens: &[&str], start: usize, end: usize) -> bool {
    let before = start.checked_sub(1).and_then(|i| tokens.get(i));
    match rule {
        Rule::Plain => true,
        Rule::Postal => !before.is_some_and(|w| NON_POSTAL.contains(w)),
        Rule::PersonName => {
            tokens.len() == 1
                || before.is_some_and(|w| PERSON_WORDS.contains(w))
                || (start == 0
                    && tokens
                        .get(end..)
                        .unwrap_or_default()
                        .iter()
                        .all(|t| NAME_SUFFIXES.contains(t)))
        }
    }
}

/// Lower-case ASCII tokens: split at every non-alphanumeric character
/// (non-ASCII included) and at camel-case boundaries (`aB`, `1B`, and
/// `ABc` before the `B`).
fn tokenize(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut out = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            continue;
        }
        if c.is_ascii_uppercase() && !cur.is_empty() {
            let prev = i.checked_sub(1).and_then(|p| chars.get(p)).copied();
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase());
            let boundary = prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next_lower)
            });
            if boundary {
                out.push(std::mem::take(&mut cur));
            }
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Kind::*;

    #[test]
    fn tokens() {
        let cases: &[(&str, &[&str])] = &[
            ("id_card_no", &["id", "card", "no"]),
            ("idCardNo", &["id", "card", "no"]),
            ("IDCard", &["id", "card"]),
            ("IPAddress", &["ip", "address"]),
            ("user-mobile", &["user", "mobile"]),
            ("SFZH", &["sfzh"]),
            ("userXM", &["user", "xm"]),
            ("phone2", &["phone2"]),
            ("ipv4Addr", &["ipv4", "addr"]),
            ("用户sfzh", &["sfzh"]),
            ("a.b c", &["a", "b", "c"]),
            ("", &[]),
        ];
        for &(name, want) in cases {
            assert_eq!(tokenize(name), want, "{name}");
        }
    }

    #[test]
    fn table() {
        let cases: &[(&str, Option<(Kind, &str)>)] = &[
            // English
            ("id_card", Some((IdNumber, "id_card"))),
            ("idcard", Some((IdNumber, "idcard"))),
            ("idCardNo", Some((IdNumber, "id_card"))),
            ("id_card_no", Some((IdNumber, "id_card"))),
            ("id_number", Some((IdNumber, "id_number"))),
            ("identity", Some((IdNumber, "identity"))),
            ("citizen_id", Some((IdNumber, "citizen_id"))),
            ("ssn", Some((IdNumber, "ssn"))),
            ("mobile", Some((Phone, "mobile"))),
            ("user_mobile", Some((Phone, "mobile"))),
            ("contactPhone", Some((Phone, "phone"))),
            ("phone2", Some((Phone, "phone"))),
            ("cellphone", Some((Phone, "cellphone"))),
            ("tel", Some((Phone, "tel"))),
            ("tel_no", Some((Phone, "tel"))),
            ("email", Some((Email, "email"))),
            ("email_address", Some((Email, "email"))),
            ("e_mail", Some((Email, "mail"))),
            ("bank_card", Some((BankCard, "bank_card"))),
            ("bank_card_no", Some((BankCard, "bank_card"))),
            ("card_no", Some((BankCard, "card_no"))),
            ("account_no", Some((BankCard, "account_no"))),
            ("iban", Some((BankCard, "iban"))),
            ("passport_no", Some((Passport, "passport"))),
            ("address", Some((Address, "address"))),
            ("home_addr", Some((Address, "addr"))),
            ("name", Some((Name, "name"))),
            ("full_name", Some((Name, "full_name"))),
            ("customer_name", Some((Name, "name"))),
            ("name_cn", Some((Name, "name"))),
            ("plate", Some((Plate, "plate"))),
            ("license_plate", Some((Plate, "license_plate"))),
            ("ip", Some((Ip, "ip"))),
            ("ip_addr", Some((Ip, "ip_addr"))),
            ("client_ip", Some((Ip, "ip"))),
            ("IPAddress", Some((Ip, "ip_address"))),
            ("ipv4", Some((Ip, "ipv4"))),
            ("credit_code", Some((CreditCode, "credit_code"))),
            ("uscc", Some((CreditCode, "uscc"))),
            // pinyin initials
            ("sfzh", Some((IdNumber, "sfzh"))),
            ("SFZ", Some((IdNumber, "sfz"))),
            ("zjhm", Some((IdNumber, "zjhm"))),
            ("GMSFHM", Some((IdNumber, "gmsfhm"))),
            ("sjhm", Some((Phone, "sjhm"))),
            ("lxdh", Some((Phone, "lxdh"))),
            ("dh", Some((Phone, "dh"))),
            ("yhkh", Some((BankCard, "yhkh"))),
            ("yhk", Some((BankCard, "yhk"))),
            ("xm", Some((Name, "xm"))),
            ("user_xm", Some((Name, "xm"))),
            ("dz", Some((Address, "dz"))),
            ("zz", Some((Address, "zz"))),
            ("hzhm", Some((Passport, "hzhm"))),
            ("cph", Some((Plate, "cph"))),
            ("tyshxydm", Some((CreditCode, "tyshxydm"))),
            // Chinese
            ("身份证号", Some((IdNumber, "身份证号"))),
            ("身份证号码", Some((IdNumber, "身份证号码"))),
            ("身份证", Some((IdNumber, "身份证"))),
            ("证件号码", Some((IdNumber, "证件号码"))),
            ("手机号", Some((Phone, "手机号"))),
            ("用户手机", Some((Phone, "手机"))),
            ("联系电话", Some((Phone, "联系电话"))),
            ("电话", Some((Phone, "电话"))),
            ("邮箱", Some((Email, "邮箱"))),
            ("邮箱地址", Some((Email, "邮箱"))),
            ("银行卡号", Some((BankCard, "银行卡号"))),
            ("银行卡", Some((BankCard, "银行卡"))),
            ("收款账号", Some((BankCard, "账号"))),
            ("姓名", Some((Name, "姓名"))),
            ("名字", Some((Name, "名字"))),
            ("家庭地址", Some((Address, "地址"))),
            ("住址", Some((Address, "住址"))),
            ("护照号", Some((Passport, "护照号"))),
            ("车牌号", Some((Plate, "车牌号"))),
            ("统一社会信用代码", Some((CreditCode, "统一社会信用代码"))),
            ("IP地址", Some((Ip, "ip地址"))),
            ("用户sfzh", Some((IdNumber, "sfzh"))),
            // negatives
            ("user_id", None),
            ("card_id", None),
            ("id", None),
            ("xml", None),
            ("xml_data", None),
            ("hotel", None),
            ("email_verified", None),
            ("phone_verified_at", None),
            ("mobile_app_version", None),
            ("mobile_app", None),
            ("phone_model", None),
            ("id_card_type", None),
            ("phone_hash", None),
            ("phone_count", None),
            ("is_mobile", None),
            ("has_email", None),
            ("mail_server", None),
            ("file_name", None),
            ("table_name", None),
            ("user_name", None),
            ("username", None),
            ("product_name", None),
            ("mac_address", None),
            ("web_addr", None),
            ("zip", None),
            ("vip_level", None),
            ("created_at", None),
            ("手机型号", None),
            ("是否实名", None),
            ("邮箱是否验证", None),
            ("手机号_hash", None),
            ("用户账号", None),
            ("登录账号", None),
            ("单位名称", None),
            ("", None),
            ("___", None),
        ];
        for &(name, want) in cases {
            assert_eq!(classify_column(name), want, "{name}");
        }
    }
}
