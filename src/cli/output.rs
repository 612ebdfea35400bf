//! Output helpers: aligned tables, bytes as text or JSON.

use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::{Map, Value};

/// Bytes as UTF-8 text, each byte of an invalid sequence as `\xNN`.
pub fn escape_bytes(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for chunk in b.utf8_chunks() {
        out.push_str(chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

/// Adds `name` to a JSON object: a string when the bytes are UTF-8, else
/// base64 with `<name>_encoding: "base64"`; null for `None`.
pub fn put_bytes(obj: &mut Map<String, Value>, name: &str, b: Option<&[u8]>) {
    let value = match b {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => Value::String(s.to_string()),
            Err(_) => {
                obj.insert(format!("{name}_encoding"), Value::String("base64".into()));
                Value::String(base64::engine::general_purpose::STANDARD.encode(b))
            }
        },
    };
    obj.insert(name.to_string(), value);
}

pub fn print_json(v: &Value) {
    println!("{v}");
}

/// A table printed with columns padded to their widest cell.
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            rows: vec![headers.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        print!("{}", self.render());
    }

    fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .map(|s| s.chars().count())
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for row in &self.rows {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate() {
                if i + 1 < row.len() {
                    let _ = write!(line, "{cell:<w$}  ", w = widths[i]);
                } else {
                    line.push_str(cell);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `-1` (unknown) as `-`.
pub fn offset_cell(o: i64) -> String {
    if o < 0 {
        "-".into()
    } else {
        o.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_only_invalid_bytes() {
        assert_eq!(escape_bytes(b"plain \xc3\xa9"), "plain é");
        assert_eq!(escape_bytes(b"a\xffb\xc3"), "a\\xffb\\xc3");
    }

    #[test]
    fn json_bytes_and_tables() {
        let mut o = Map::new();
        put_bytes(&mut o, "value", Some(b"\xff\x00"));
        put_bytes(&mut o, "key", None);
        put_bytes(&mut o, "text", Some(b"hi"));
        assert_eq!(
            Value::Object(o).to_string(),
            r#"{"key":null,"text":"hi","value":"/wA=","value_encoding":"base64"}"#
        );
        let mut t = Table::new(&["A", "LONGER"]);
        t.row(vec!["xyz".into(), "1".into()]);
        assert_eq!(t.render(), "A    LONGER\nxyz  1\n");
    }
}
