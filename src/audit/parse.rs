//! Small readers for the config formats the audit rules inspect. Each keeps the line number,
//! so a finding can say where to look.

/// `key = value` lines of postgresql.conf: (line, key, value without quotes or comment).
pub fn postgres_conf(text: &str) -> Vec<(usize, String, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let line = strip_comment(line).trim();
            let (key, value) = line.split_once('=').or_else(|| line.split_once(char::is_whitespace))?;
            let value = value.trim().trim_matches('\'').to_owned();
            Some((index + 1, key.trim().to_lowercase(), value))
        })
        .collect()
}

fn strip_comment(line: &str) -> &str {
    // A '#' inside quotes is rare in these files; hardstack's own templates never put one there.
    let mut quoted = false;
    for (index, c) in line.char_indices() {
        match c {
            '\'' => quoted = !quoted,
            '#' if !quoted => return &line[..index],
            _ => {}
        }
    }
    line
}

/// The last value of a key (PostgreSQL and Redis take the last occurrence).
pub fn last<'a>(entries: &'a [(usize, String, String)], key: &str) -> Option<&'a (usize, String, String)> {
    entries.iter().rev().find(|(_, k, _)| k == key)
}

/// Directive lines of redis.conf: (line, directive, arguments).
pub fn redis_conf(text: &str) -> Vec<(usize, String, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                return None;
            }
            let (key, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
            Some((index + 1, key.to_lowercase(), rest.trim().trim_matches('"').to_owned()))
        })
        .collect()
}

/// A pg_hba.conf record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HbaLine {
    pub line: usize,
    pub kind: String,
    pub database: String,
    pub user: String,
    /// The address field of a host line; empty for `local`.
    pub address: String,
    pub method: String,
    pub options: Vec<String>,
}

impl HbaLine {
    /// Whether the line lets a connection in (anything but `reject`).
    pub fn accepts(&self) -> bool {
        self.method != "reject"
    }
}

/// Records of pg_hba.conf.
pub fn hba(text: &str) -> Vec<HbaLine> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let fields: Vec<&str> = line.split('#').next()?.split_whitespace().collect();
            let kind = *fields.first()?;
            let (database, user, address, rest) = match kind {
                "local" => (fields.get(1)?, fields.get(2)?, "", &fields[3.min(fields.len())..]),
                _ => (fields.get(1)?, fields.get(2)?, *fields.get(3)?, &fields[4.min(fields.len())..]),
            };
            let method = rest.first()?.to_string();
            Some(HbaLine {
                line: index + 1,
                kind: kind.to_owned(),
                database: database.to_string(),
                user: user.to_string(),
                address: address.to_owned(),
                method,
                options: rest.iter().skip(1).map(|s| s.to_string()).collect(),
            })
        })
        .collect()
}

/// `user NAME rules...` lines of a Redis ACL file: (line, name, rules).
pub fn acl(text: &str) -> Vec<(usize, String, Vec<String>)> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let mut words = line.split_whitespace();
            (words.next()? == "user").then_some(())?;
            let name = words.next()?.to_owned();
            Some((index + 1, name, words.map(str::to_owned).collect()))
        })
        .collect()
}

/// Seconds of a PostgreSQL time setting (`30s`, `1min`, `60`).
pub fn seconds(value: &str) -> Option<u64> {
    let value = value.trim();
    let digits: String = value.chars().take_while(|c| c.is_ascii_digit()).collect();
    let number: u64 = digits.parse().ok()?;
    match value[digits.len()..].trim() {
        "" | "s" => Some(number),
        "ms" => Some(number / 1000),
        "min" => Some(number * 60),
        "h" => Some(number * 3600),
        "d" => Some(number * 86_400),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hba_reads_local_and_host_records() {
        let lines =
            hba("# c\nlocal all postgres scram-sha-256\nhostssl app app all scram-sha-256 clientcert=verify-full\n");
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].method, "scram-sha-256");
        assert_eq!(lines[1].options, vec!["clientcert=verify-full"]);
        assert_eq!(lines[1].line, 3);
    }

    #[test]
    fn postgres_conf_strips_quotes_and_comments() {
        let entries = postgres_conf("ssl = on # yes\nssl_ciphers = 'A:B'\n");
        assert_eq!(last(&entries, "ssl").unwrap().2, "on");
        assert_eq!(last(&entries, "ssl_ciphers").unwrap().2, "A:B");
    }

    #[test]
    fn seconds_reads_units() {
        assert_eq!(seconds("30s"), Some(30));
        assert_eq!(seconds("1min"), Some(60));
        assert_eq!(seconds("45"), Some(45));
        assert_eq!(seconds("x"), None);
    }
}
