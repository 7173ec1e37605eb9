//! A small EDN reader, enough for Jepsen and Knossos histories.
//!
//! EDN values map onto JSON values so that the rest of faultline sees one value model: keywords
//! and symbols become strings without the colon, vectors, lists and sets become arrays, maps
//! become objects (keys rendered as strings), `nil` becomes null. Tagged literals (`#inst`,
//! `#uuid`, ...) keep their value and drop the tag; `#_` discards the next form.
//!
//! The reader works on bytes and tracks line and column so that an error names its place.

use serde_json::{Map, Number, Value};

/// A parse error at a 1-based line and column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdnError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Nesting deeper than this is rejected rather than risking the stack.
const DEPTH_MAX: usize = 256;

pub struct Reader<'a> {
    src: &'a [u8],
    pos: usize,
    line: usize,
    line_start: usize,
}

impl<'a> Reader<'a> {
    pub fn new(src: &'a str) -> Self {
        Reader::at_line(src, 1)
    }

    /// A reader whose first line is numbered `line` (for one-map-per-line files).
    pub fn at_line(src: &'a str, line: usize) -> Self {
        Reader {
            src: src.as_bytes(),
            pos: 0,
            line,
            line_start: 0,
        }
    }

    pub fn line(&self) -> usize {
        self.line
    }

    fn error(&self, message: impl Into<String>) -> EdnError {
        EdnError {
            line: self.line,
            column: self.pos - self.line_start + 1,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.src.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        if c == b'\n' {
            self.line += 1;
            self.line_start = self.pos;
        }
        Some(c)
    }

    /// Skips whitespace, commas and `;` comments.
    pub fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            match c {
                b' ' | b'\t' | b'\n' | b'\r' | b',' => {
                    self.bump();
                }
                b';' => {
                    while let Some(c) = self.peek() {
                        if c == b'\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                _ => break,
            }
        }
    }

    pub fn at_end(&mut self) -> bool {
        self.skip_ws();
        self.peek().is_none()
    }

    /// Position of the next form (after whitespace): (line, column).
    pub fn position(&mut self) -> (usize, usize) {
        self.skip_ws();
        (self.line, self.pos - self.line_start + 1)
    }

    /// If the next form opens a collection with `open`, consumes the delimiter.
    pub fn enter(&mut self, open: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(open) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// If the next character closes a collection with `close`, consumes it.
    pub fn leave(&mut self, close: u8) -> bool {
        self.skip_ws();
        if self.peek() == Some(close) {
            self.bump();
            true
        } else {
            false
        }
    }

    /// Reads one form.
    pub fn read(&mut self) -> Result<Value, EdnError> {
        self.read_depth(0)
    }

    fn read_depth(&mut self, depth: usize) -> Result<Value, EdnError> {
        if depth > DEPTH_MAX {
            return Err(self.error(format!("EDN nested deeper than {DEPTH_MAX} levels")));
        }
        self.skip_ws();
        let Some(c) = self.peek() else {
            return Err(self.error("unexpected end of input; expected an EDN value"));
        };
        match c {
            b'[' => {
                self.bump();
                self.read_seq(b']', depth)
            }
            b'(' => {
                self.bump();
                self.read_seq(b')', depth)
            }
            b'{' => {
                self.bump();
                self.read_map(depth)
            }
            b'#' => self.read_dispatch(depth),
            b'"' => self.read_string().map(Value::String),
            b':' => {
                self.bump();
                let name = self.read_token();
                if name.is_empty() {
                    return Err(self.error("empty keyword; expected a name after ':'"));
                }
                Ok(Value::String(name))
            }
            b'\\' => self.read_char(),
            b']' | b')' | b'}' => {
                Err(self.error(format!("unexpected '{}'; expected an EDN value", c as char)))
            }
            _ => {
                let token = self.read_token();
                if token.is_empty() {
                    return Err(self.error(format!(
                        "unexpected character {:?}; expected an EDN value",
                        self.char_here()
                    )));
                }
                Ok(self.atom(&token))
            }
        }
    }

    fn char_here(&self) -> char {
        std::str::from_utf8(&self.src[self.pos..])
            .ok()
            .and_then(|s| s.chars().next())
            .unwrap_or('\u{FFFD}')
    }

    fn read_seq(&mut self, close: u8, depth: usize) -> Result<Value, EdnError> {
        let mut items = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => {
                    return Err(self.error(format!(
                        "unexpected end of input; expected '{}' to close a collection",
                        close as char
                    )))
                }
                Some(c) if c == close => {
                    self.bump();
                    return Ok(Value::Array(items));
                }
                Some(_) => {
                    if let Some(v) = self.read_item(depth)? {
                        items.push(v);
                    }
                }
            }
        }
    }

    /// Reads one element of a collection; `None` when it was a `#_` discard.
    fn read_item(&mut self, depth: usize) -> Result<Option<Value>, EdnError> {
        if self.src[self.pos..].starts_with(b"#_") {
            self.bump();
            self.bump();
            self.read_depth(depth + 1)?;
            return Ok(None);
        }
        self.read_depth(depth + 1).map(Some)
    }

    fn read_map(&mut self, depth: usize) -> Result<Value, EdnError> {
        let mut map = Map::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => {
                    return Err(self.error(
                        "unexpected end of input; expected '}' to close a map (truncated line?)",
                    ))
                }
                Some(b'}') => {
                    self.bump();
                    return Ok(Value::Object(map));
                }
                Some(_) => {
                    let Some(k) = self.read_item(depth)? else {
                        continue;
                    };
                    self.skip_ws();
                    if self.peek() == Some(b'}') || self.peek().is_none() {
                        return Err(self.error("map has a key with no value"));
                    }
                    let v = loop {
                        if let Some(v) = self.read_item(depth)? {
                            break v;
                        }
                    };
                    map.insert(key_string(&k), v);
                }
            }
        }
    }

    fn read_dispatch(&mut self, depth: usize) -> Result<Value, EdnError> {
        self.bump(); // '#'
        match self.peek() {
            Some(b'{') => {
                self.bump();
                self.read_seq(b'}', depth)
            }
            Some(b'_') => {
                self.bump();
                self.read_depth(depth + 1)?;
                self.read_depth(depth)
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let _tag = self.read_token();
                self.read_depth(depth + 1)
            }
            _ => Err(self.error("unsupported '#' form; expected #{...}, #_ or a tagged literal")),
        }
    }

    fn read_string(&mut self) -> Result<String, EdnError> {
        self.bump(); // opening quote
        let mut out = Vec::new();
        loop {
            let Some(c) = self.bump() else {
                return Err(self.error("unexpected end of input inside a string; expected '\"'"));
            };
            match c {
                b'"' => break,
                b'\\' => {
                    let Some(e) = self.bump() else {
                        return Err(self.error("unexpected end of input after '\\' in a string"));
                    };
                    match e {
                        b'n' => out.push(b'\n'),
                        b't' => out.push(b'\t'),
                        b'r' => out.push(b'\r'),
                        b'"' => out.push(b'"'),
                        b'\\' => out.push(b'\\'),
                        b'u' => {
                            let hex: String =
                                (0..4).filter_map(|_| self.bump()).map(char::from).collect();
                            let ch = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| {
                                    self.error(format!("bad unicode escape \\u{hex}"))
                                })?;
                            let mut buf = [0u8; 4];
                            out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                        }
                        other => {
                            return Err(self.error(format!(
                                "unknown escape '\\{}' in a string",
                                other as char
                            )))
                        }
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| self.error("string is not valid UTF-8"))
    }

    fn read_char(&mut self) -> Result<Value, EdnError> {
        self.bump(); // backslash
        let token = self.read_token();
        let s = match token.as_str() {
            "newline" => "\n".to_string(),
            "space" => " ".to_string(),
            "tab" => "\t".to_string(),
            "return" => "\r".to_string(),
            "" => match self.bump() {
                Some(c) => (c as char).to_string(),
                None => return Err(self.error("unexpected end of input after '\\'")),
            },
            t => t.to_string(),
        };
        Ok(Value::String(s))
    }

    /// Reads a symbol-like token: everything up to whitespace or a delimiter.
    fn read_token(&mut self) -> String {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if matches!(
                c,
                b' ' | b'\t'
                    | b'\n'
                    | b'\r'
                    | b','
                    | b'['
                    | b']'
                    | b'('
                    | b')'
                    | b'{'
                    | b'}'
                    | b'"'
                    | b';'
            ) {
                break;
            }
            self.bump();
        }
        String::from_utf8_lossy(&self.src[start..self.pos]).into_owned()
    }

    fn atom(&self, token: &str) -> Value {
        match token {
            "nil" => return Value::Null,
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
        let digits = token.strip_suffix('N').unwrap_or(token);
        if let Ok(i) = digits.parse::<i64>() {
            return Value::Number(i.into());
        }
        if let Ok(u) = digits.parse::<u64>() {
            return Value::Number(u.into());
        }
        let float = token.strip_suffix('M').unwrap_or(token);
        if float.starts_with(|c: char| c.is_ascii_digit() || c == '-' || c == '+' || c == '.') {
            if let Some(n) = float.parse::<f64>().ok().and_then(Number::from_f64) {
                return Value::Number(n);
            }
        }
        Value::String(token.to_string())
    }
}

/// Renders a map key as a string: strings and keywords as their text, others as JSON.
fn key_string(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Parses a whole string as exactly one EDN value.
pub fn parse_one(src: &str) -> Result<Value, EdnError> {
    let mut r = Reader::new(src);
    let v = r.read()?;
    if !r.at_end() {
        return Err(r.error("trailing characters after the EDN value"));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn edn(src: &str) -> Value {
        parse_one(src).unwrap_or_else(|e| panic!("{src}: {e:?}"))
    }

    #[test]
    fn reads_scalars_and_collections() {
        assert_eq!(edn("nil"), Value::Null);
        assert_eq!(edn("42"), json!(42));
        assert_eq!(edn("-7N"), json!(-7));
        assert_eq!(edn("1.5"), json!(1.5));
        assert_eq!(edn(":timed-out"), json!("timed-out"));
        assert_eq!(edn("\"a \\\"b\\\"\""), json!("a \"b\""));
        assert_eq!(edn("[1 2, 3]"), json!([1, 2, 3]));
        assert_eq!(edn("(1 (2))"), json!([1, [2]]));
        assert_eq!(edn("#{:a}"), json!(["a"]));
        assert_eq!(
            edn("{:type :ok, :f :cas, :value [1 2]}"),
            json!({"type": "ok", "f": "cas", "value": [1, 2]})
        );
        assert_eq!(edn("[1 #_ 2 3] ; comment"), json!([1, 3]));
        assert_eq!(edn("#inst \"2020-01-01\""), json!("2020-01-01"));
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = parse_one("[1\n  {:a 1").unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.message.contains("expected '}'"), "{}", e.message);
        let e = parse_one("]").unwrap_err();
        assert_eq!((e.line, e.column), (1, 1));
    }
}
