//! History formats: faultline JSONL, Jepsen EDN and Jepsen log lines, all read into one model.
//!
//! The format is detected from the content (the first meaningful characters), so a user never
//! has to say what a file is; [`Format`] can force one. Readers are strict: the first line that
//! does not fit is an error naming its line (and column where it applies) and what was expected.
//! Nothing is silently skipped, except the non-history lines of a Jepsen log (lines without the
//! `jepsen.util -` marker, when the file has that marker at all).
//!
//! Every reader ends by validating the pairing of invocations and completions
//! ([`History::ops`]), so a history that reads is a history every checker can trust.

pub mod edn;
pub mod stream;

use crate::history::{Event, EventType, History, Process};
use serde_json::Value;
use std::fmt;
use std::io::Write;
use std::path::Path;

/// The formats faultline reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// faultline JSON Lines: one event object per line.
    Jsonl,
    /// Jepsen EDN: one vector or list of op maps, or one op map per line.
    Edn,
    /// Jepsen log lines: `INFO  jepsen.util - 3 :ok :cas [1 2]`.
    JepsenLog,
}

impl Format {
    pub const NAMES: &'static [&'static str] = &["jsonl", "edn", "jepsen-log"];

    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "jsonl" | "json" => Some(Format::Jsonl),
            "edn" => Some(Format::Edn),
            "jepsen-log" | "log" => Some(Format::JepsenLog),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Edn => "edn",
            Format::JepsenLog => "jepsen-log",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a history could not be read. `line` is 1-based; 0 means the file as a whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadError {
    pub line: usize,
    pub column: Option<usize>,
    pub message: String,
}

impl ReadError {
    fn at(line: usize, column: Option<usize>, message: impl Into<String>) -> Self {
        ReadError {
            line,
            column,
            message: message.into(),
        }
    }
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (0, _) => f.write_str(&self.message),
            (l, Some(c)) => write!(f, "line {l}, column {c}: {}", self.message),
            (l, None) => write!(f, "line {l}: {}", self.message),
        }
    }
}

impl std::error::Error for ReadError {}

/// Reads a history file, detecting its format unless `format` forces one.
/// Errors are prefixed with the path.
pub fn read_path(path: &Path, format: Option<Format>) -> Result<History, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    read_bytes(&bytes, format).map_err(|e| format!("{}: {e}", path.display()))
}

/// Reads a history from raw bytes: rejects binary and non-UTF-8 input with the place it starts.
pub fn read_bytes(bytes: &[u8], format: Option<Format>) -> Result<History, ReadError> {
    if let Some(pos) = bytes.iter().position(|&b| b == 0) {
        let (line, column) = line_col(bytes, pos);
        return Err(ReadError::at(
            line,
            Some(column),
            "binary data (a NUL byte); expected a text history (JSONL, EDN or a Jepsen log)",
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let (line, column) = line_col(bytes, e.valid_up_to());
        ReadError::at(
            line,
            Some(column),
            "invalid UTF-8; expected a text history (JSONL, EDN or a Jepsen log)",
        )
    })?;
    read_str(text, format)
}

fn line_col(bytes: &[u8], pos: usize) -> (usize, usize) {
    let before = &bytes[..pos];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    (line, pos - line_start + 1)
}

/// Reads a history from text, detecting its format unless `format` forces one.
///
/// A text with no history lines at all (empty, blank, only EDN comments, `[]`) reads as an
/// empty history: that is not malformed input but a history with nothing in it, and every
/// checker answers it `unknown` ("no completed operations to check").
pub fn read_str(text: &str, format: Option<Format>) -> Result<History, ReadError> {
    if first_meaningful_line(text).is_none() {
        return Ok(History::default());
    }
    let format = match format {
        Some(f) => f,
        None => detect(text)?,
    };
    let history = match format {
        Format::Jsonl => read_jsonl(text)?,
        Format::Edn => read_edn(text)?,
        Format::JepsenLog => read_jepsen_log(text)?,
    };
    history
        .ops()
        .map_err(|e| ReadError::at(e.line, None, e.message))?;
    Ok(history)
}

fn first_meaningful_line(text: &str) -> Option<&str> {
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with(';'))
}

/// Guesses the format from the first meaningful characters. A text without any reads as JSONL
/// (an empty history).
pub fn detect(text: &str) -> Result<Format, ReadError> {
    let Some(first) = first_meaningful_line(text) else {
        return Ok(Format::Jsonl);
    };
    if first.starts_with("{\"") || first == "{" || first.starts_with("{ \"") {
        Ok(Format::Jsonl)
    } else if looks_like_json_array(text) {
        Err(ReadError::at(
            1,
            None,
            "this is a JSON array (it starts with [ and its first element is a JSON object or value); faultline reads JSON Lines, one event object per line, not an array: write one event per line (e.g. jq -c '.[]'), or force a format with --format edn|jsonl|jepsen-log",
        ))
    } else if first.starts_with('{') || first.starts_with('[') || first.starts_with('(') {
        Ok(Format::Edn)
    } else if first.contains("jepsen.util - ") || looks_like_log_line(first) {
        Ok(Format::JepsenLog)
    } else {
        let shown: String = first.chars().take(40).collect();
        Err(ReadError::at(
            1,
            None,
            format!(
                "cannot tell the format from {shown:?}; expected a JSON object, an EDN map or vector, or a Jepsen log line (use --format to force one)"
            ),
        ))
    }
}

/// True when `text` starts like a JSON array (`[` then a JSON object, string, number, `[` or
/// `]`, with commas between elements), which an EDN vector of op maps never does: EDN op maps
/// have keyword keys (`{:type`), JSON objects string keys (`{"type"`).
fn looks_like_json_array(text: &str) -> bool {
    let rest = text.trim_start();
    let Some(rest) = rest.strip_prefix('[') else {
        return false;
    };
    let rest = rest.trim_start();
    rest.starts_with("{\"") || rest.starts_with("{ \"") || rest.starts_with("{}")
}

fn looks_like_log_line(line: &str) -> bool {
    let mut parts = line.split_whitespace();
    let process_ok = parts
        .next()
        .is_some_and(|p| p.parse::<u64>().is_ok() || p == ":nemesis");
    process_ok && parts.next().is_some_and(|t| t.starts_with(':'))
}

// ---------------------------------------------------------------------------------------------
// JSONL

fn read_jsonl(text: &str) -> Result<History, ReadError> {
    let mut events = Vec::new();
    let ends_with_newline = text.ends_with('\n');
    let line_count = text.lines().count();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let event: Event = serde_json::from_str(line).map_err(|e| {
            let truncated = e.is_eof() && line_no == line_count && !ends_with_newline;
            let message = if truncated {
                "the line ends mid-event (truncated file?); expected a complete JSON object"
                    .to_string()
            } else {
                jsonl_message(&e)
            };
            ReadError::at(line_no, Some(e.column()), message)
        })?;
        check_index_order(&events, &event, line_no)?;
        events.push(event);
    }
    Ok(History::new(events))
}

/// Rewords serde's messages into the contract's terms.
fn jsonl_message(e: &serde_json::Error) -> String {
    let raw = e.to_string();
    // serde appends " at line L column C"; we report the place ourselves.
    let raw = raw.split(" at line ").next().unwrap_or(&raw).to_string();
    if raw.starts_with("unknown variant") {
        format!("{raw} (the event's \"type\")")
    } else if raw.starts_with("missing field") {
        format!("{raw}; expected an event with index, process, type and f (see docs/history.md)")
    } else {
        format!("{raw}; expected one JSON event object per line")
    }
}

fn check_index_order(events: &[Event], event: &Event, line: usize) -> Result<(), ReadError> {
    if let Some(prev) = events.last() {
        if event.index <= prev.index {
            return Err(ReadError::at(
                line,
                None,
                format!(
                    "index {} does not follow {}; expected strictly increasing indices in the order events happened",
                    event.index, prev.index
                ),
            ));
        }
    }
    Ok(())
}

/// Writes a history as faultline JSONL, one event per line.
pub fn write_jsonl(history: &History, mut out: impl Write) -> std::io::Result<()> {
    for e in &history.events {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

// ---------------------------------------------------------------------------------------------
// Jepsen EDN

fn read_edn(text: &str) -> Result<History, ReadError> {
    let mut reader = edn::Reader::new(text);
    let mut maps: Vec<(usize, Value)> = Vec::new();
    let edn_err = |e: edn::EdnError| ReadError::at(e.line, Some(e.column), e.message);
    reader.skip_ws();
    let (start_line, _) = reader.position();
    let wrapped = reader.enter(b'[') || reader.enter(b'(');
    loop {
        if wrapped {
            if reader.leave(b']') || reader.leave(b')') {
                if !reader.at_end() {
                    let (l, c) = reader.position();
                    return Err(ReadError::at(
                        l,
                        Some(c),
                        "trailing data after the history's closing bracket",
                    ));
                }
                break;
            }
            if reader.at_end() {
                return Err(ReadError::at(
                    start_line,
                    None,
                    "the history's opening bracket is never closed (truncated file?)",
                ));
            }
        } else if reader.at_end() {
            break;
        }
        let (line, column) = reader.position();
        let value = reader.read().map_err(edn_err)?;
        if !value.is_object() {
            return Err(ReadError::at(
                line,
                Some(column),
                "expected an op map like {:type :invoke, :f :read, :process 0, :value nil}",
            ));
        }
        maps.push((line, value));
    }
    let has_time = maps.iter().any(|(_, m)| m.get("time").is_some());
    let mut events = Vec::with_capacity(maps.len());
    for (pos, (line, map)) in maps.into_iter().enumerate() {
        let event = edn_event(pos, line, map, has_time)?;
        check_index_order(&events, &event, line)?;
        events.push(event);
    }
    Ok(History {
        events,
        synthetic_time: !has_time,
    })
}

fn edn_event(pos: usize, line: usize, map: Value, has_time: bool) -> Result<Event, ReadError> {
    let Value::Object(mut m) = map else {
        unreachable!("caller checked for a map")
    };
    let err = |msg: String| ReadError::at(line, None, msg);
    let kind = match m.get("type").and_then(Value::as_str) {
        Some(t) => parse_type(t).ok_or_else(|| {
            err(format!(
                "unknown :type :{t}; expected :invoke, :ok, :fail or :info"
            ))
        })?,
        None => {
            return Err(err(
                "op map has no :type; expected :invoke, :ok, :fail or :info".into(),
            ))
        }
    };
    let process = match m.get("process") {
        Some(Value::Number(n)) if n.as_u64().is_some() => Process::Client(n.as_u64().unwrap_or(0)),
        Some(Value::String(s)) if s == "nemesis" => Process::Nemesis,
        Some(other) => {
            return Err(err(format!(
                ":process {other} is neither a non-negative integer nor :nemesis"
            )))
        }
        None => return Err(err("op map has no :process".into())),
    };
    let f = match m.remove("f") {
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
        None => return Err(err("op map has no :f".into())),
    };
    let index = match m.get("index").and_then(Value::as_u64) {
        Some(i) => i,
        None => pos as u64,
    };
    // Without timestamps, time is the line the op starts on: order is kept, and "line N" in
    // explanations and reports points into the file.
    let time = if has_time {
        m.get("time").and_then(Value::as_u64).unwrap_or(0)
    } else {
        line as u64
    };
    let key = m.remove("key").map(value_key);
    let mut value = m.remove("value").unwrap_or(Value::Null);
    let mut error = m.remove("error").map(|e| match e {
        Value::String(s) => s,
        other => other.to_string(),
    });
    let mut kind = kind;
    if value.as_str() == Some("timed-out") {
        kind = timed_out_kind(kind, &f);
        value = Value::Null;
        error.get_or_insert_with(|| "timed-out".to_string());
    }
    Ok(Event {
        index,
        time,
        process,
        kind,
        f,
        key,
        value,
        error,
    })
}

/// The type of a completion whose value is Jepsen's `:timed-out`. The op may or may not have
/// taken effect, so it is `info`, whatever type the line gives, with one exception: a read
/// logged `:fail` (Jepsen's etcd logs do this). A read takes no effect, so "did not take
/// effect" and "may have" are the same for it; it stays `fail`, observes nothing, and, as in
/// Jepsen, its process goes on to invoke again (an `info` would retire the process).
fn timed_out_kind(kind: EventType, f: &str) -> EventType {
    match kind {
        EventType::Invoke => EventType::Invoke,
        EventType::Fail if f == "read" => EventType::Fail,
        _ => EventType::Info,
    }
}

/// Keys are strings in the model; numbers and other values keep their JSON text.
pub fn value_key(v: Value) -> String {
    match v {
        Value::String(s) => s,
        other => other.to_string(),
    }
}

fn parse_type(t: &str) -> Option<EventType> {
    match t {
        "invoke" => Some(EventType::Invoke),
        "ok" => Some(EventType::Ok),
        "fail" => Some(EventType::Fail),
        "info" => Some(EventType::Info),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Jepsen log lines

fn read_jepsen_log(text: &str) -> Result<History, ReadError> {
    const MARKER: &str = "jepsen.util - ";
    let marked = text.contains(MARKER);
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let body = if marked {
            match line.find(MARKER) {
                Some(at) => &line[at + MARKER.len()..],
                None => continue,
            }
        } else if line.trim().is_empty() {
            continue;
        } else {
            line
        };
        let event = log_event(events.len(), line_no, body)?;
        events.push(event);
    }
    Ok(History {
        events,
        synthetic_time: true,
    })
}

fn log_event(pos: usize, line: usize, body: &str) -> Result<Event, ReadError> {
    let expected = "expected PROCESS :TYPE :F VALUE, e.g. \"3\t:ok\t:cas\t[1 2]\"";
    let mut rest = body.trim_start();
    let mut field = |name: &str| -> Result<&str, ReadError> {
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        let (tok, tail) = rest.split_at(end);
        if tok.is_empty() {
            return Err(ReadError::at(
                line,
                None,
                format!("missing {name}; {expected}"),
            ));
        }
        rest = tail.trim_start();
        Ok(tok)
    };
    let process_tok = field("process")?;
    let process = if process_tok == ":nemesis" {
        Process::Nemesis
    } else {
        Process::Client(process_tok.parse::<u64>().map_err(|_| {
            ReadError::at(
                line,
                None,
                format!("process {process_tok:?} is neither a non-negative integer nor :nemesis; {expected}"),
            )
        })?)
    };
    let type_tok = field("type")?;
    let mut kind = type_tok
        .strip_prefix(':')
        .and_then(parse_type)
        .ok_or_else(|| {
            ReadError::at(
                line,
                None,
                format!("unknown type {type_tok:?}; expected :invoke, :ok, :fail or :info"),
            )
        })?;
    let f_tok = field("f")?;
    let f = f_tok.strip_prefix(':').unwrap_or(f_tok).to_string();
    let value_src = rest.trim();
    let mut value = if value_src.is_empty() {
        Value::Null
    } else {
        edn::parse_one(value_src).map_err(|e| {
            let column = body.len() - rest.len() + e.column;
            ReadError::at(line, Some(column), format!("value: {}", e.message))
        })?
    };
    let mut error = None;
    if value.as_str() == Some("timed-out") {
        kind = timed_out_kind(kind, &f);
        value = Value::Null;
        error = Some("timed-out".to_string());
    } else if kind == EventType::Fail && f == "cas" {
        // Porcupine reads a Jepsen log's failed cas as an observed mismatch (etcd's compare
        // failed), and so does faultline: the error says so to the register model.
        error = Some(crate::linear::models::CAS_MISMATCH.to_string());
    }
    Ok(Event {
        index: pos as u64,
        // No timestamps: the file's line number keeps the order and points into the file.
        time: line as u64,
        process,
        kind,
        f,
        key: None,
        value,
        error,
    })
}

#[cfg(test)]
mod tests;
