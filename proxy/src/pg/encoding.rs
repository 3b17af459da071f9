//! The session settings that change how statement text must be lexed —
//! `client_encoding` and `standard_conforming_strings` — shared between the
//! two halves of a session, and the decoding of statement bytes to UTF-8.
//!
//! Why it matters: in GBK, Big5, Shift-JIS and friends the second byte of a
//! character can be an ASCII backslash or quote. Lexing those bytes as
//! UTF-8 splits `select E'乗'; drop table t` differently from the server,
//! hiding a statement from audit and policy. PostgreSQL converts a whole
//! Query/Parse text with the encoding in force when it arrives, so the
//! proxy decodes with the same encoding, and while a statement that may
//! change it is in flight, later text is not trusted to lex at all.

use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;

use encoding_rs::Encoding;

/// How statement bytes in one client encoding become text to analyse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoding {
    /// UTF-8 (the common case): borrowed when valid, lossy otherwise.
    Utf8,
    /// Encodings whose multibyte characters never contain ASCII bytes
    /// (SQL_ASCII, EUC_TW, MULE_INTERNAL, EUC_JIS_2004): lossy UTF-8 is safe
    /// for lexing.
    AsciiSafe,
    /// Decoded with encoding_rs.
    Table(&'static Encoding),
    /// An encoding the proxy cannot decode safely (JOHAB): text is not
    /// split or parsed, and says so.
    Unsupported,
}

/// PostgreSQL encoding name → how to decode it.
pub fn decoding_for(pg_name: &str) -> Decoding {
    let name = pg_name.trim().to_ascii_uppercase().replace('-', "_");
    let label = match name.as_str() {
        "UTF8" | "UNICODE" | "UTF_8" => return Decoding::Utf8,
        "SQL_ASCII" | "EUC_TW" | "MULE_INTERNAL" | "EUC_JIS_2004" => return Decoding::AsciiSafe,
        "GBK" | "WIN936" | "CP936" | "EUC_CN" => "gbk",
        "GB18030" => "gb18030",
        "BIG5" | "WIN950" | "CP950" => "big5",
        "SJIS" | "SHIFT_JIS" | "SHIFT_JIS_2004" | "MSKANJI" | "SHIFTJIS" | "WIN932" | "CP932" => {
            "shift_jis"
        }
        "UHC" | "WIN949" | "CP949" | "EUC_KR" => "euc-kr",
        "EUC_JP" => "euc-jp",
        "LATIN1" | "ISO_8859_1" => "iso-8859-1",
        "LATIN2" | "ISO_8859_2" => "iso-8859-2",
        "LATIN3" | "ISO_8859_3" => "iso-8859-3",
        "LATIN4" | "ISO_8859_4" => "iso-8859-4",
        "LATIN5" | "ISO_8859_9" => "iso-8859-9",
        "LATIN6" | "ISO_8859_10" => "iso-8859-10",
        "LATIN7" | "ISO_8859_13" => "iso-8859-13",
        "LATIN8" | "ISO_8859_14" => "iso-8859-14",
        "LATIN9" | "ISO_8859_15" => "iso-8859-15",
        "LATIN10" | "ISO_8859_16" => "iso-8859-16",
        "ISO_8859_5" => "iso-8859-5",
        "ISO_8859_6" => "iso-8859-6",
        "ISO_8859_7" => "iso-8859-7",
        "ISO_8859_8" => "iso-8859-8",
        "WIN866" | "ALT" => "ibm866",
        "WIN874" => "windows-874",
        "KOI8R" | "KOI8" | "KOI8_R" => "koi8-r",
        "KOI8U" | "KOI8_U" => "koi8-u",
        w if w.starts_with("WIN125") => return table_decoding(&format!("windows-{}", &w[3..])),
        _ => return Decoding::Unsupported,
    };
    table_decoding(label)
}

fn table_decoding(label: &str) -> Decoding {
    Encoding::for_label(label.as_bytes()).map_or(Decoding::Unsupported, Decoding::Table)
}

/// Statement bytes as text for analysis. `Err` when the encoding cannot be
/// decoded safely; the caller then treats the text as unanalysable.
pub fn decode(bytes: &[u8], d: Decoding) -> Result<Cow<'_, str>, &'static str> {
    match d {
        Decoding::Utf8 | Decoding::AsciiSafe => Ok(String::from_utf8_lossy(bytes)),
        Decoding::Table(enc) => Ok(enc.decode_without_bom_handling(bytes).0),
        Decoding::Unsupported => Err("the session's client_encoding cannot be decoded by danxia"),
    }
}

/// Settings shared by the two halves of one session.
pub struct LexState {
    /// From ParameterStatus `client_encoding`. A mutex, not an atomic: it is
    /// read once per statement message, uncontended, and `Decoding` is two
    /// words.
    encoding: Mutex<Decoding>,
    standard_conforming_strings: AtomicBool,
    /// Statements that may change a lexing setting, sent but not yet
    /// answered. While non-zero, new statement text is not analysed: the
    /// server may already read it with settings the proxy has not seen.
    changes_in_flight: AtomicUsize,
    /// COPY FROM STDIN bytes since the last completed statement.
    pub copy_in_bytes: AtomicU64,
}

impl LexState {
    pub fn new(standard_conforming_strings: bool, client_encoding: Option<&str>) -> Self {
        let s = Self {
            encoding: Mutex::new(Decoding::Utf8),
            standard_conforming_strings: AtomicBool::new(standard_conforming_strings),
            changes_in_flight: AtomicUsize::new(0),
            copy_in_bytes: AtomicU64::new(0),
        };
        if let Some(e) = client_encoding {
            s.set_client_encoding(e);
        }
        s
    }

    /// From the backend's ParameterStatus.
    pub fn on_parameter(&self, name: &str, value: &str) {
        match name {
            "client_encoding" => self.set_client_encoding(value),
            "standard_conforming_strings" => self
                .standard_conforming_strings
                .store(value == "on", Ordering::Relaxed),
            _ => {}
        }
    }

    fn set_client_encoding(&self, value: &str) {
        *self.encoding.lock().unwrap_or_else(|p| p.into_inner()) = decoding_for(value);
    }

    pub fn decoding(&self) -> Decoding {
        *self.encoding.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn standard_conforming_strings(&self) -> bool {
        self.standard_conforming_strings.load(Ordering::Relaxed)
    }

    pub fn change_sent(&self) {
        self.changes_in_flight.fetch_add(1, Ordering::AcqRel);
    }

    pub fn change_done(&self) {
        // Saturating: never wrap below zero whatever the order of events.
        let _ = self
            .changes_in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// True while text must not be trusted to lex like the server does.
    pub fn unsettled(&self) -> bool {
        self.changes_in_flight.load(Ordering::Acquire) > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_names_map_to_decodings() {
        assert_eq!(decoding_for("UTF8"), Decoding::Utf8);
        assert_eq!(decoding_for("SQL_ASCII"), Decoding::AsciiSafe);
        assert_eq!(decoding_for("JOHAB"), Decoding::Unsupported);
        assert_eq!(decoding_for("nonsense"), Decoding::Unsupported);
        for (pg, label) in [
            ("GBK", "GBK"),
            ("gb18030", "gb18030"),
            ("BIG5", "Big5"),
            ("SJIS", "Shift_JIS"),
            ("UHC", "EUC-KR"),
            ("EUC_JP", "EUC-JP"),
            ("LATIN1", "windows-1252"),
            ("WIN1251", "windows-1251"),
            ("KOI8R", "KOI8-R"),
        ] {
            match decoding_for(pg) {
                Decoding::Table(e) => assert_eq!(e.name(), label, "{pg}"),
                other => panic!("{pg}: {other:?}"),
            }
        }
    }

    #[test]
    fn gbk_trail_backslash_is_not_an_escape() {
        // 乗 in GBK is 0x81 0x5C: the second byte is '\'.
        let bytes = b"select E'\x81\x5c'; drop table victim";
        let text = decode(bytes, decoding_for("GBK")).unwrap();
        assert!(text.contains("E'\u{4e57}'"), "{text}");
        let lossy = decode(bytes, Decoding::Utf8).unwrap();
        assert!(
            lossy.contains("\\'"),
            "UTF-8 decoding keeps the backslash: {lossy}"
        );
    }

    #[test]
    fn lex_state_tracks_parameters_and_changes() {
        let s = LexState::new(true, Some("UTF8"));
        assert_eq!(s.decoding(), Decoding::Utf8);
        s.on_parameter("client_encoding", "GBK");
        assert!(matches!(s.decoding(), Decoding::Table(e) if e.name() == "GBK"));
        s.on_parameter("client_encoding", "UTF8");
        assert_eq!(s.decoding(), Decoding::Utf8);
        s.on_parameter("standard_conforming_strings", "off");
        assert!(!s.standard_conforming_strings());
        assert!(!s.unsettled());
        s.change_sent();
        assert!(s.unsettled());
        s.change_done();
        s.change_done();
        assert!(!s.unsettled());
    }
}
