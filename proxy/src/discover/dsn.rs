//! The `--dsn` of `danxia discover`: which database to scan and how to log
//! in. Owns parsing the URL and saying what is wrong with a bad one. Never
//! shows the password: [`Dsn`]'s `Display` and every error leave it out.

use std::fmt;

/// Default PostgreSQL port.
pub const POSTGRES_PORT: u16 = 5432;
/// Default MySQL/MariaDB port.
pub const MYSQL_PORT: u16 = 3306;

/// The shapes a DSN may take, for error messages.
pub const DSN_FORMS: &str =
    "postgres://USER[:PASSWORD]@HOST[:PORT]/DB or mysql://USER[:PASSWORD]@HOST[:PORT][/DB]";

/// Which kind of server the DSN names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Postgres,
    Mysql,
}

impl Dialect {
    /// The product name for messages.
    pub fn product(self) -> &'static str {
        match self {
            Dialect::Postgres => "PostgreSQL",
            Dialect::Mysql => "MySQL/MariaDB",
        }
    }

    /// The environment variable the usual clients read a password from
    /// when the DSN has none (keeps it off the command line).
    pub fn password_env(self) -> &'static str {
        match self {
            Dialect::Postgres => "PGPASSWORD",
            Dialect::Mysql => "MYSQL_PWD",
        }
    }
}

/// A parsed `--dsn`.
#[derive(Clone, PartialEq, Eq)]
pub struct Dsn {
    pub dialect: Dialect,
    pub user: String,
    pub password: Option<String>,
    /// Host name or IP address (an IPv6 address without its brackets).
    pub host: String,
    pub port: u16,
    /// Required for PostgreSQL; for MySQL `None` means every non-system
    /// database.
    pub database: Option<String>,
}

impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Same as Display: the password never reaches a log line.
        write!(f, "{self}")
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.dialect {
            Dialect::Postgres => "postgres",
            Dialect::Mysql => "mysql",
        };
        write!(f, "{scheme}://{}@{}", self.user, self.address())?;
        if let Some(db) = &self.database {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

impl Dsn {
    /// `host:port`, with brackets around an IPv6 address.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Parses `text`; the error says what is wrong and shows the expected
    /// forms (without echoing a password).
    pub fn parse(text: &str) -> Result<Dsn, String> {
        let bad = |what: &str| format!("bad --dsn: {what}; expected {DSN_FORMS}");
        let (scheme, rest) = text
            .split_once("://")
            .ok_or_else(|| bad("no scheme (postgres:// or mysql://)"))?;
        let dialect = match scheme.to_ascii_lowercase().as_str() {
            "postgres" | "postgresql" => Dialect::Postgres,
            "mysql" | "mariadb" => Dialect::Mysql,
            other => return Err(bad(&format!("unknown scheme `{other}`"))),
        };
        if rest.contains(['?', '#']) {
            return Err(bad("query parameters are not supported"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| bad("no user (USER@HOST)"))?;
        let (user, password) = match userinfo.split_once(':') {
            Some((u, p)) => (
                u,
                Some(decode(p).ok_or_else(|| bad("bad %-escape in the password"))?),
            ),
            None => (userinfo, None),
        };
        let user = decode(user).ok_or_else(|| bad("bad %-escape in the user"))?;
        if user.is_empty() {
            return Err(bad("empty user"));
        }
        let (host, port) = split_host_port(hostport).map_err(|e| bad(&e))?;
        let port = match port {
            Some(p) => p,
            None => match dialect {
                Dialect::Postgres => POSTGRES_PORT,
                Dialect::Mysql => MYSQL_PORT,
            },
        };
        let database = match path {
            None | Some("") => None,
            Some(p) if p.contains('/') => return Err(bad("the path must be one database name")),
            Some(p) => Some(decode(p).ok_or_else(|| bad("bad %-escape in the database"))?),
        };
        if dialect == Dialect::Postgres && database.is_none() {
            return Err(bad("name the database (postgres://USER@HOST:PORT/DB)"));
        }
        Ok(Dsn {
            dialect,
            user,
            password: password.filter(|p| !p.is_empty()),
            host,
            port,
            database,
        })
    }
}

fn split_host_port(s: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed `[` in an IPv6 host")?;
        match after {
            "" => (host, None),
            p => (
                host,
                Some(p.strip_prefix(':').ok_or("junk after the IPv6 host")?),
            ),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("empty host".into());
    }
    let port = match port {
        None => None,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => Some(n),
            _ => return Err(format!("bad port `{p}` (1-65535)")),
        },
    };
    Ok((host.to_string(), port))
}

/// Percent-decodes `s` (`%40` → `@`); `None` on a bad escape or a result
/// that is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dsn(
        dialect: Dialect,
        user: &str,
        password: Option<&str>,
        host: &str,
        port: u16,
        database: Option<&str>,
    ) -> Dsn {
        Dsn {
            dialect,
            user: user.into(),
            password: password.map(Into::into),
            host: host.into(),
            port,
            database: database.map(Into::into),
        }
    }

    #[test]
    fn good() {
        use Dialect::*;
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/test",
                dsn(Postgres, "postgres", None, "127.0.0.1", 5432, Some("test")),
            ),
            (
                "postgresql://app:s%40cret@db.example:6000/crm",
                dsn(
                    Postgres,
                    "app",
                    Some("s@cret"),
                    "db.example",
                    6000,
                    Some("crm"),
                ),
            ),
            (
                "postgres://u@h/d",
                dsn(Postgres, "u", None, "h", 5432, Some("d")),
            ),
            (
                "mysql://root@127.0.0.1:3306/test",
                dsn(Mysql, "root", None, "127.0.0.1", 3306, Some("test")),
            ),
            (
                "mysql://root:@127.0.0.1",
                dsn(Mysql, "root", None, "127.0.0.1", 3306, None),
            ),
            (
                "mariadb://root:pw@[::1]:3307/",
                dsn(Mysql, "root", Some("pw"), "::1", 3307, None),
            ),
            (
                "MYSQL://a:b:c@h/db",
                dsn(Mysql, "a", Some("b:c"), "h", 3306, Some("db")),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(Dsn::parse(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad() {
        let cases = [
            ("127.0.0.1:5432", "no scheme"),
            ("oracle://u@h/d", "unknown scheme `oracle`"),
            ("postgres://h:5432/d", "no user"),
            ("postgres://@h/d", "empty user"),
            ("postgres://u@h:99999/d", "bad port `99999`"),
            ("postgres://u@h:/d", "bad port ``"),
            ("postgres://u@:5432/d", "empty host"),
            ("postgres://u@h:5432", "name the database"),
            ("postgres://u@h/d?sslmode=require", "query parameters"),
            ("mysql://u@[::1/d", "unclosed `[`"),
            ("mysql://u@h/a/b", "one database name"),
            ("mysql://u:%zz@h/d", "bad %-escape in the password"),
        ];
        for (text, want) in cases {
            let err = Dsn::parse(text).expect_err(text);
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains("expected postgres://"), "{text}: {err}");
        }
    }

    #[test]
    fn password_is_never_shown() {
        let d =
            Dsn::parse("mysql://root:hunter2@[::1]:3306/test").unwrap_or_else(|e| panic!("{e}"));
        for shown in [d.to_string(), format!("{d:?}")] {
            assert!(!shown.contains("hunter2"), "{shown}");
            assert_eq!(shown, "mysql://root@[::1]:3306/test");
        }
        let err = Dsn::parse("postgres://u:hunter2@h:0/d").expect_err("port 0");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
