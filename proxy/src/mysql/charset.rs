//! The MySQL connection character set as the proxy needs it: how statement
//! bytes become text to analyse, and how the set changes (the handshake's
//! collation, `SET NAMES`, `SET CHARACTER SET`, `SET character_set_client`,
//! session tracking).
//!
//! Why it matters: in GBK, Big5 and Shift-JIS the second byte of a
//! character can be `\` or `'`. Lexing those bytes as UTF-8 reads
//! `select '縗'' or 1=1 -- '` differently from the server and hides text
//! from policy; so the proxy decodes exactly as the server will.

use danxia_protocols::mysql::charset::{charset_of_collation, normalize_charset_name};

use crate::pg::encoding::Decoding;

/// MySQL character set name → how to decode statement bytes.
pub fn decoding_for(name: &str) -> Decoding {
    let label = match normalize_charset_name(name).as_str() {
        "utf8mb4" | "utf8mb3" | "utf8" => return Decoding::Utf8,
        // Sets whose multibyte characters never contain an ASCII byte:
        // lossy UTF-8 lexes them the same way.
        "ascii" | "binary" | "ujis" | "eucjpms" | "euckr" => return Decoding::AsciiSafe,
        // GB2312 is a subset of GBK.
        "gb2312" => "gbk",
        "latin1" => "windows-1252",
        "latin2" => "iso-8859-2",
        "latin5" => "iso-8859-9",
        "latin7" => "iso-8859-13",
        "greek" => "iso-8859-7",
        "hebrew" => "iso-8859-8",
        "cp1250" => "windows-1250",
        "cp1251" => "windows-1251",
        "cp1256" => "windows-1256",
        "cp1257" => "windows-1257",
        "cp866" => "ibm866",
        "koi8r" => "koi8-r",
        "koi8u" => "koi8-u",
        "tis620" => "windows-874",
        "gbk" => "gbk",
        "gb18030" => "gb18030",
        "big5" => "big5",
        "sjis" | "cp932" => "shift_jis",
        _ => return Decoding::Unsupported,
    };
    table(label)
}

fn table(label: &str) -> Decoding {
    encoding_rs::Encoding::for_label(label.as_bytes())
        .map_or(Decoding::Unsupported, Decoding::Table)
}

/// The decoding of a handshake or COM_CHANGE_USER collation id.
pub fn decoding_for_collation(id: u16) -> Decoding {
    charset_of_collation(id).map_or(Decoding::Unsupported, decoding_for)
}

/// The character set a successful statement set for the client's text, if
/// it is one that does: `SET NAMES x [COLLATE y]`, `SET CHARACTER SET x`,
/// `SET CHARSET x`, `SET [SESSION] character_set_client = x` (also
/// `@@character_set_client`, `@@session.…`). `DEFAULT` means the server's
/// default, which the caller cannot know: it is returned as is.
pub fn charset_set_by(statement: &str) -> Option<String> {
    let lower = statement.trim().to_ascii_lowercase();
    let rest = lower.strip_prefix("set")?;
    if !rest.starts_with(|c: char| c.is_whitespace()) {
        return None;
    }
    let rest = rest.trim_start();
    let rest = rest
        .strip_prefix("session ")
        .or_else(|| rest.strip_prefix("local "))
        .map(str::trim_start)
        .unwrap_or(rest);
    let value = if let Some(v) = rest.strip_prefix("names") {
        v
    } else if let Some(v) = rest.strip_prefix("character set") {
        v
    } else if let Some(v) = rest.strip_prefix("charset") {
        v
    } else {
        // A list of assignments: the last one to character_set_client wins.
        let mut found = None;
        for part in rest.split(',') {
            let part = part.trim();
            let name = part
                .trim_start_matches("@@session.")
                .trim_start_matches("@@local.")
                .trim_start_matches("@@")
                .trim_start_matches("session ")
                .trim_start();
            if let Some(v) = name.strip_prefix("character_set_client") {
                let v = v.trim_start();
                let v = v.strip_prefix(":=").or_else(|| v.strip_prefix('='))?;
                found = Some(first_word(v));
            }
        }
        return found.filter(|v| !v.is_empty());
    };
    if !value.starts_with(|c: char| c.is_whitespace() || c == '\'' || c == '"' || c == '`') {
        return None;
    }
    let v = first_word(value);
    (!v.is_empty()).then_some(v)
}

fn first_word(s: &str) -> String {
    let w = s
        .trim_start()
        .split(|c: char| c.is_whitespace() || c == ';' || c == ',')
        .next()
        .unwrap_or("");
    normalize_charset_name(w)
}

/// Whether a `SET` statement may change how later text is lexed: the
/// client character set or `sql_mode` (NO_BACKSLASH_ESCAPES, ANSI_QUOTES).
pub fn changes_lexing(normalized: &str) -> bool {
    let n = normalized.to_ascii_lowercase();
    n.starts_with("set")
        && (n.contains("names")
            || n.contains("character")
            || n.contains("charset")
            || n.contains("sql_mode"))
}

/// The ANSI_QUOTES setting a successful `SET [SESSION] sql_mode = '…'`
/// leaves, when the statement says it literally (`None` when it does not
/// set sql_mode or sets it from an expression the proxy cannot evaluate).
pub fn ansi_quotes_set_by(statement: &str) -> Option<bool> {
    let lower = statement.to_ascii_lowercase();
    let at = lower.find("sql_mode")?;
    let rest = lower[at + "sql_mode".len()..].trim_start();
    let rest = rest.strip_prefix(":=").or_else(|| rest.strip_prefix('='))?;
    let rest = rest.trim_start();
    let quote = rest.chars().next()?;
    if quote != '\'' && quote != '"' {
        return None;
    }
    let value = rest[1..].split(quote).next()?;
    Some(
        value
            .split(',')
            .any(|m| matches!(m.trim(), "ansi_quotes" | "ansi")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_character_sets_are_read_from_statements() {
        assert_eq!(charset_set_by("SET NAMES gbk").as_deref(), Some("gbk"));
        assert_eq!(
            charset_set_by("set names 'utf8mb4' collate 'utf8mb4_bin'").as_deref(),
            Some("utf8mb4")
        );
        assert_eq!(
            charset_set_by("SET CHARACTER SET big5").as_deref(),
            Some("big5")
        );
        assert_eq!(
            charset_set_by("SET character_set_client = gbk").as_deref(),
            Some("gbk")
        );
        assert_eq!(
            charset_set_by("set @@session.character_set_client='latin1', autocommit=1").as_deref(),
            Some("latin1")
        );
        assert_eq!(charset_set_by("SET autocommit=1"), None);
        assert_eq!(charset_set_by("SETNAMES gbk"), None);
        assert_eq!(charset_set_by("select 'set names gbk'"), None);
    }

    #[test]
    fn decodings() {
        assert_eq!(decoding_for("utf8mb4"), Decoding::Utf8);
        assert!(matches!(decoding_for("gbk"), Decoding::Table(_)));
        assert!(matches!(decoding_for("GB2312"), Decoding::Table(_)));
        assert_eq!(decoding_for("utf16"), Decoding::Unsupported);
        assert!(
            matches!(decoding_for_collation(28), Decoding::Table(_)),
            "gbk_chinese_ci"
        );
        assert_eq!(decoding_for_collation(45), Decoding::Utf8);
    }

    #[test]
    fn sql_mode_quotes() {
        assert_eq!(
            ansi_quotes_set_by("SET sql_mode='ANSI_QUOTES,STRICT_TRANS_TABLES'"),
            Some(true)
        );
        assert_eq!(
            ansi_quotes_set_by("set @@session.sql_mode = 'ansi'"),
            Some(true)
        );
        assert_eq!(ansi_quotes_set_by("SET sql_mode=''"), Some(false));
        assert_eq!(ansi_quotes_set_by("SET sql_mode=@old"), None);
        assert!(changes_lexing("set names ?"));
        assert!(changes_lexing("set session sql_mode = ?"));
        assert!(!changes_lexing("set autocommit = ?"));
    }
}
