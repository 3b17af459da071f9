//! Collation ids and character sets.
//!
//! Owns the mapping from the collation ids the protocol carries (the
//! handshake's charset byte, `COM_CHANGE_USER`, column definitions) to the
//! character set of the bytes: the proxy must know whether SQL text and
//! values are UTF-8, GBK, latin1, … before it can analyse or mask them.
//!
//! Must never: convert text (the caller does, knowing what it needs), or
//! guess: an unknown id is None, and the caller decides what to do with a
//! connection whose charset it cannot read.
//!
//! Sources: MySQL 8.0's `INFORMATION_SCHEMA.COLLATIONS` (ids 1..=323) and
//! MariaDB 10.11's (which adds the "nopad" collations at base id + 1024,
//! extra pages at 576..=767 and the UCA 14.0.0 collations at 2048..=3327;
//! the tests hold MariaDB 10.11's full table). The charset byte of the
//! handshake only carries ids up to 255; larger ids appear in column
//! definitions and `COM_CHANGE_USER`.

/// The character set of collation `id`, by its MySQL name (`utf8mb3`, not
/// the ambiguous alias `utf8`); None for an id no known server defines.
pub fn charset_of_collation(id: u16) -> Option<&'static str> {
    Some(match id {
        1 | 84 => "big5",
        2 | 9 | 21 | 27 | 77 => "latin2",
        3 | 69 => "dec8",
        4 | 80 => "cp850",
        5 | 8 | 15 | 31 | 47..=49 | 94 => "latin1",
        6 | 72 => "hp8",
        7 | 74 => "koi8r",
        10 | 82 => "swe7",
        11 | 65 => "ascii",
        12 | 91 => "ujis",
        13 | 88 => "sjis",
        14 | 23 | 50..=52 => "cp1251",
        16 | 71 => "hebrew",
        18 | 89 => "tis620",
        19 | 85 => "euckr",
        20 | 41 | 42 | 79 => "latin7",
        22 | 75 => "koi8u",
        24 | 86 => "gb2312",
        25 | 70 => "greek",
        26 | 34 | 44 | 66 | 99 => "cp1250",
        28 | 87 => "gbk",
        29 | 58 | 59 => "cp1257",
        30 | 78 => "latin5",
        32 | 64 => "armscii8",
        33 | 76 | 83 | 192..=215 | 223 => "utf8mb3",
        35 | 90 | 128..=151 | 159 => "ucs2",
        36 | 68 => "cp866",
        37 | 73 => "keybcs2",
        38 | 43 => "macce",
        39 | 53 => "macroman",
        40 | 81 => "cp852",
        45 | 46 | 224..=247 | 255..=323 => "utf8mb4",
        54 | 55 | 101..=124 => "utf16",
        56 | 62 => "utf16le",
        57 | 67 => "cp1256",
        60 | 61 | 160..=183 => "utf32",
        63 => "binary",
        92 | 93 => "geostd8",
        95 | 96 => "cp932",
        97 | 98 => "eucjpms",
        248..=250 => "gb18030",
        // MariaDB: pages of 32 ids for collations added in 10.x.
        576..=607 => "utf8mb3",
        608..=639 => "utf8mb4",
        640..=671 => "ucs2",
        672..=703 => "utf16",
        704..=735 => "utf16le",
        736..=767 => "utf32",
        // MariaDB: the "nopad" variant of collation n is n + 1024.
        // (76, MySQL's utf8mb3_tolower_ci, and 248.. have no such variant.)
        1025..=1271 if id - 1024 != 76 => return charset_of_collation(id - 1024),
        // MariaDB 10.10+: UCA 14.0.0 collations, 256 ids per charset.
        2048..=2303 => "utf8mb3",
        2304..=2559 => "utf8mb4",
        2560..=2815 => "ucs2",
        2816..=3071 => "utf16",
        3072..=3327 => "utf32",
        _ => return None,
    })
}

/// A charset name as written in SQL or a setting (`SET NAMES 'UTF8MB4'`,
/// `` `gbk` ``), made comparable with [`charset_of_collation`]'s names:
/// trimmed, quotes and backticks removed, lower-cased. Aliases are not
/// resolved (`utf8` stays `utf8`; the server decides what it means).
pub fn normalize_charset_name(name: &str) -> String {
    name.trim()
        .trim_matches(|c| matches!(c, '\'' | '"' | '`'))
        .trim()
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `SELECT id, character_set_name FROM information_schema
    /// .collation_character_set_applicability` on MariaDB 10.11.19, as
    /// `first-last:charset` ranges.
    const MARIADB_10_11: &str = "\
1:big5 2:latin2 3:dec8 4:cp850 5:latin1 6:hp8 7:koi8r 8:latin1 9:latin2 10:swe7 \
     11:ascii 12:ujis 13:sjis 14:cp1251 15:latin1 16:hebrew 18:tis620 19:euckr 20:latin7 \
     21:latin2 22:koi8u 23:cp1251 24:gb2312 25:greek 26:cp1250 27:latin2 28:gbk \
     29:cp1257 30:latin5 31:latin1 32:armscii8 33:utf8mb3 34:cp1250 35:ucs2 36:cp866 \
     37:keybcs2 38:macce 39:macroman 40:cp852 41-42:latin7 43:macce 44:cp1250 \
     45-46:utf8mb4 47-49:latin1 50-52:cp1251 53:macroman 54-55:utf16 56:utf16le \
     57:cp1256 58-59:cp1257 60-61:utf32 62:utf16le 63:binary 64:armscii8 65:ascii \
     66:cp1250 67:cp1256 68:cp866 69:dec8 70:greek 71:hebrew 72:hp8 73:keybcs2 74:koi8r \
     75:koi8u 77:latin2 78:latin5 79:latin7 80:cp850 81:cp852 82:swe7 83:utf8mb3 84:big5 \
     85:euckr 86:gb2312 87:gbk 88:sjis 89:tis620 90:ucs2 91:ujis 92-93:geostd8 94:latin1 \
     95-96:cp932 97-98:eucjpms 99:cp1250 101-124:utf16 128-151:ucs2 159:ucs2 \
     160-183:utf32 192-215:utf8mb3 223:utf8mb3 224-247:utf8mb4 576-578:utf8mb3 \
     608-610:utf8mb4 640-642:ucs2 672-674:utf16 736-738:utf32 1025:big5 1027:dec8 \
     1028:cp850 1030:hp8 1031:koi8r 1032:latin1 1033:latin2 1034:swe7 1035:ascii \
     1036:ujis 1037:sjis 1040:hebrew 1042:tis620 1043:euckr 1046:koi8u 1048:gb2312 \
     1049:greek 1050:cp1250 1052:gbk 1054:latin5 1056:armscii8 1057:utf8mb3 1059:ucs2 \
     1060:cp866 1061:keybcs2 1062:macce 1063:macroman 1064:cp852 1065:latin7 1067:macce \
     1069-1070:utf8mb4 1071:latin1 1074-1075:cp1251 1077:macroman 1078-1079:utf16 \
     1080:utf16le 1081:cp1256 1082-1083:cp1257 1084-1085:utf32 1086:utf16le \
     1088:armscii8 1089:ascii 1090:cp1250 1091:cp1256 1092:cp866 1093:dec8 1094:greek \
     1095:hebrew 1096:hp8 1097:keybcs2 1098:koi8r 1099:koi8u 1101:latin2 1102:latin5 \
     1103:latin7 1104:cp850 1105:cp852 1106:swe7 1107:utf8mb3 1108:big5 1109:euckr \
     1110:gb2312 1111:gbk 1112:sjis 1113:tis620 1114:ucs2 1115:ujis 1116-1117:geostd8 \
     1119-1120:cp932 1121-1122:eucjpms 1125:utf16 1147:utf16 1152:ucs2 1174:ucs2 \
     1184:utf32 1206:utf32 1216:utf8mb3 1238:utf8mb3 1248:utf8mb4 1270:utf8mb4 \
     2048-2215:utf8mb3 2232-2247:utf8mb3 2304-2471:utf8mb4 2488-2503:utf8mb4 \
     2560-2727:ucs2 2744-2759:ucs2 2816-2983:utf16 3000-3015:utf16 3072-3239:utf32 \
     3256-3271:utf32 ";

    #[test]
    fn every_mariadb_collation_maps_to_its_charset() {
        let mut checked = 0;
        for range in MARIADB_10_11.split_whitespace() {
            let (ids, charset) = range.split_once(':').unwrap();
            let (first, last) = ids.split_once('-').unwrap_or((ids, ids));
            let (first, last): (u16, u16) = (first.parse().unwrap(), last.parse().unwrap());
            for id in first..=last {
                assert_eq!(charset_of_collation(id), Some(charset), "id {id}");
                checked += 1;
            }
        }
        assert!(checked > 900, "{checked}");
    }

    #[test]
    fn mysql_8_and_unknown_ids() {
        let cases = [
            (255, Some("utf8mb4")), // utf8mb4_0900_ai_ci, MySQL 8's default
            (309, Some("utf8mb4")), // utf8mb4_0900_bin
            (323, Some("utf8mb4")),
            (76, Some("utf8mb3")), // utf8mb3_tolower_ci
            (248, Some("gb18030")),
            (250, Some("gb18030")),
            (63, Some("binary")),
            (0, None),
            (17, None), // "filename", internal
            (100, None),
            (251, None),
            (324, None),
            (1024, None),
            (1100, None), // 76 + 1024: not a MariaDB collation
            (1272, None), // gb18030 has no nopad variant
            (4000, None),
            (u16::MAX, None),
        ];
        for (id, want) in cases {
            assert_eq!(charset_of_collation(id), want, "id {id}");
        }
    }

    #[test]
    fn normalize_table() {
        let cases = [
            ("utf8mb4", "utf8mb4"),
            ("  UTF8MB4 ", "utf8mb4"),
            ("'GBK'", "gbk"),
            ("\"latin1\"", "latin1"),
            ("`utf8`", "utf8"),
            ("' big5 '", "big5"),
            ("", ""),
            ("''", ""),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_charset_name(input), want, "{input:?}");
        }
    }
}
