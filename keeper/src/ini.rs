//! The INI format of `pg_autoctl.cfg`: sections in a fixed order,
//! `key = value` lines, a blank line between sections, empty string values
//! omitted.

use std::fmt::Write;

/// An ordered INI document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ini {
    pub sections: Vec<(String, Vec<(String, String)>)>,
}

/// A line that is neither a section, a `key = value` pair nor a comment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: cannot parse \"{text}\"")]
pub struct ParseError {
    pub line: usize,
    pub text: String,
}

impl Ini {
    pub fn parse(text: &str) -> Result<Ini, ParseError> {
        let mut ini = Ini::default();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                ini.sections.push((name.trim().to_string(), Vec::new()));
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                return Err(ParseError {
                    line: i + 1,
                    text: raw.to_string(),
                });
            };
            let Some((_, entries)) = ini.sections.last_mut() else {
                return Err(ParseError {
                    line: i + 1,
                    text: raw.to_string(),
                });
            };
            entries.push((k.trim().to_string(), v.trim().to_string()));
        }
        Ok(ini)
    }

    /// The value of `section.key`.
    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.sections
            .iter()
            .filter(|(s, _)| s == section)
            .flat_map(|(_, e)| e.iter())
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Set `section.key`, keeping the order of existing keys.
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        let idx = match self.sections.iter().position(|(s, _)| s == section) {
            Some(i) => i,
            None => {
                self.sections.push((section.to_string(), Vec::new()));
                self.sections.len() - 1
            }
        };
        let entries = &mut self.sections[idx].1;
        match entries.iter_mut().find(|(k, _)| k == key) {
            Some((_, v)) => *v = value.to_string(),
            None => entries.push((key.to_string(), value.to_string())),
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, (section, entries)) in self.sections.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let _ = writeln!(out, "[{section}]");
            for (k, v) in entries {
                if !v.is_empty() {
                    let _ = writeln!(out, "{k} = {v}");
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_empty_values_omitted() {
        let text = "[pg_autoctl]\nrole = keeper\nmonitor = postgres://a@b:1/c?x=y\n\n[postgresql]\npgdata = /d\n";
        let mut ini = Ini::parse(text).unwrap();
        assert_eq!(
            ini.get("pg_autoctl", "monitor"),
            Some("postgres://a@b:1/c?x=y")
        );
        assert_eq!(ini.render(), text);
        ini.set("postgresql", "username", "");
        ini.set("ssl", "active", "0");
        assert_eq!(ini.render(), format!("{text}\n[ssl]\nactive = 0\n"));
        assert!(Ini::parse("novalue\n").is_err());
        assert!(Ini::parse("k = v\n").is_err(), "key outside a section");
    }
}
