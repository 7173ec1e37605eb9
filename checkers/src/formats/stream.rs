//! A streaming reader of faultline JSONL: one event at a time, nothing kept.
//!
//! [`read_str`](super::read_str) builds a whole [`History`](crate::History) with an owned
//! `serde_json::Value` per event; that is the right shape for checkers that search, and the wrong
//! one for a ten-million-event delivery history checked in one linear pass. This reader parses
//! each line into borrowed fields (`f` and `error` as `&str`, `key` and `value` as
//! [`RawValue`] slices of the line) and hands an [`EventRef`] to a callback; a checker then
//! deserializes only the parts of `value` it needs, straight into its own borrowed types. The
//! line buffer is reused, so the hot path allocates nothing per event.
//!
//! The contract is enforced as strictly as the in-memory reader does: the first bad line is an
//! error naming it, indices must increase, a truncated last line is called truncated, an empty
//! file is an error. Pairing of invocations and completions is the callback's job (see
//! [`crate::stream::StreamPairer`]), so that it too runs in bounded memory.

use super::ReadError;
use crate::history::{EventType, HistoryError, Process};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use serde_json::Value;
use std::borrow::Cow;
use std::io::BufRead;

/// One event, borrowed from the line it was read from (or from an in-memory [`crate::Event`]).
#[derive(Debug, Clone, Copy)]
pub struct EventRef<'a> {
    pub index: u64,
    pub time: u64,
    pub process: Process,
    pub kind: EventType,
    pub f: &'a str,
    pub key: Option<&'a str>,
    pub value: ValueRef<'a>,
    pub error: Option<&'a str>,
}

impl<'a> EventRef<'a> {
    /// Borrows an in-memory event.
    pub fn of(e: &'a crate::Event) -> Self {
        EventRef {
            index: e.index,
            time: e.time,
            process: e.process,
            kind: e.kind,
            f: &e.f,
            key: e.key.as_deref(),
            value: if e.value.is_null() {
                ValueRef::Null
            } else {
                ValueRef::Tree(&e.value)
            },
            error: e.error.as_deref(),
        }
    }
}

/// An event's `value`: unparsed (a slice of valid JSON text) or already a tree.
#[derive(Debug, Clone, Copy)]
pub enum ValueRef<'a> {
    Null,
    /// JSON text, already checked to be one valid JSON value.
    Json(&'a str),
    Tree(&'a Value),
}

static NULL: Value = Value::Null;

impl<'a> ValueRef<'a> {
    /// Deserializes the value into `T`, borrowing strings from it where `T` allows.
    pub fn parse<T: Deserialize<'a>>(self) -> Result<T, serde_json::Error> {
        match self {
            ValueRef::Null => T::deserialize(&NULL),
            ValueRef::Json(text) => serde_json::from_str(text),
            ValueRef::Tree(v) => T::deserialize(v),
        }
    }

    pub fn is_null(self) -> bool {
        match self {
            ValueRef::Null => true,
            ValueRef::Json(text) => text == "null",
            ValueRef::Tree(v) => v.is_null(),
        }
    }

    /// An owned copy, for evidence and for comparisons that need a canonical form.
    pub fn to_value(self) -> Value {
        match self {
            ValueRef::Null => Value::Null,
            ValueRef::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
            ValueRef::Tree(v) => v.clone(),
        }
    }
}

/// The fields of one line, borrowed. `key` stays raw: it may be a string or a number.
#[derive(Deserialize)]
struct RawEvent<'a> {
    index: u64,
    #[serde(default)]
    time: u64,
    process: Process,
    #[serde(rename = "type")]
    kind: EventType,
    #[serde(borrow)]
    f: Cow<'a, str>,
    #[serde(borrow, default)]
    key: Option<&'a RawValue>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
    #[serde(borrow, default, deserialize_with = "optional_str")]
    error: Option<Cow<'a, str>>,
}

fn optional_str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
    #[derive(Deserialize)]
    struct Wrap<'a>(#[serde(borrow)] Option<Cow<'a, str>>);
    Ok(Wrap::deserialize(d)?.0)
}

/// Reads faultline JSONL from `reader` and calls `on_event(line, event)` for each event, in
/// order; `line` is the 1-based line number. Returns the number of events. The first bad line,
/// or the first error `on_event` returns, stops the reading and is returned with its line.
///
/// The lines are read in place from `reader`'s own buffer (no copy, except for a line that
/// straddles two fills): each filled block up to its last newline is checked as UTF-8 at once,
/// and the scanner finds each line's end itself while it reads the event, so a line is walked
/// once. A block that is not valid UTF-8, and any line the scanner declines, goes line by line
/// through [`Lines::line`], which trims, checks and parses exactly as a line on its own.
pub fn for_each_event<R, F>(mut reader: R, mut on_event: F) -> Result<u64, ReadError>
where
    R: BufRead,
    F: FnMut(usize, &EventRef<'_>) -> Result<(), HistoryError>,
{
    let mut lines = Lines {
        line_no: 0,
        last_index: None,
        events: 0,
    };
    // A line begun in an earlier fill, with its newline once found.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let chunk = reader
            .fill_buf()
            .map_err(|e| ReadError::at(lines.line_no + 1, None, format!("cannot read: {e}")))?;
        let len = chunk.len();
        if len == 0 {
            break;
        }
        let mut pos = 0;
        if !carry.is_empty() {
            match chunk.iter().position(|&b| b == b'\n') {
                None => {
                    carry.extend_from_slice(chunk);
                    reader.consume(len);
                    continue;
                }
                Some(nl) => {
                    carry.extend_from_slice(&chunk[..=nl]);
                    pos = nl + 1;
                    lines.line(&carry, &mut on_event)?;
                    carry.clear();
                }
            }
        }
        let whole = chunk[pos..]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(pos, |p| pos + p + 1);
        lines.block(&chunk[pos..whole], &mut on_event)?;
        carry.extend_from_slice(&chunk[whole..]);
        reader.consume(len);
    }
    if !carry.is_empty() {
        lines.line(&carry, &mut on_event)?;
    }
    Ok(lines.events)
}

/// The reader's position: lines seen, the last index (indices must increase), events passed on.
struct Lines {
    line_no: usize,
    last_index: Option<u64>,
    events: u64,
}

impl Lines {
    /// Whole lines, each ending with a newline.
    fn block<F>(&mut self, block: &[u8], on_event: &mut F) -> Result<(), ReadError>
    where
        F: FnMut(usize, &EventRef<'_>) -> Result<(), HistoryError>,
    {
        let Ok(text) = std::str::from_utf8(block) else {
            // Line by line, so that the error names its line and column.
            for line in block.split_inclusive(|&b| b == b'\n') {
                self.line(line, on_event)?;
            }
            return Ok(());
        };
        let b = text.as_bytes();
        let mut pos = 0;
        while pos < b.len() {
            if b[pos] == b'{' {
                if let Some((event, end)) = fast::event_at(&text[pos..]) {
                    self.line_no += 1;
                    self.pass(&event, on_event)?;
                    pos += end + 1;
                    continue;
                }
            }
            let nl = b[pos..]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(b.len(), |p| pos + p + 1);
            self.line(&b[pos..nl], on_event)?;
            pos = nl;
        }
        Ok(())
    }

    /// One line (with its newline, unless it is the last of the file), on its own.
    fn line<F>(&mut self, buf: &[u8], on_event: &mut F) -> Result<(), ReadError>
    where
        F: FnMut(usize, &EventRef<'_>) -> Result<(), HistoryError>,
    {
        self.line_no += 1;
        let line_no = self.line_no;
        let ends_with_newline = buf.last() == Some(&b'\n');
        let start = buf
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(buf.len());
        let end = buf
            .iter()
            .rposition(|b| !b.is_ascii_whitespace())
            .map_or(start, |p| p + 1);
        if start >= end {
            return Ok(());
        }
        // One UTF-8 check per line; serde then reads strings without re-validating them.
        let line = std::str::from_utf8(&buf[start..end]).map_err(|e| {
            ReadError::at(
                line_no,
                Some(start + e.valid_up_to() + 1),
                "invalid UTF-8; expected a text history",
            )
        })?;
        // The fast path reads the lines faultline writes; anything it is unsure of (escapes,
        // odd numbers, a missing field, bad JSON) goes to serde, which has the final word and
        // the exact error message.
        if let Some(event) = fast::event(line) {
            return self.pass(&event, on_event);
        }
        let slow: RawEvent = serde_json::from_str(line).map_err(|e| {
            let message = if e.is_eof() && !ends_with_newline {
                "the line ends mid-event (truncated file?); expected a complete JSON object"
                    .to_string()
            } else {
                super::jsonl_message(&e)
            };
            ReadError::at(line_no, Some(e.column() + start), message)
        })?;
        // A raw value is only skipped over by serde, never built: build the numbers in it, so
        // that a number out of range (`1e309`) is refused here as the whole-history reader
        // refuses it.
        for raw in [slow.key, slow.value].into_iter().flatten() {
            if raw.get().bytes().any(|b| b.is_ascii_digit()) {
                serde_json::from_str::<Value>(raw.get())
                    .map_err(|e| ReadError::at(line_no, None, super::jsonl_message(&e)))?;
            }
        }
        let slow_key: Option<Cow<str>> = match slow.key {
            None => None,
            Some(k) if k.get().starts_with('"') => Some(
                serde_json::from_str::<Cow<str>>(k.get())
                    .map_err(|e| ReadError::at(line_no, None, format!("key: {e}")))?,
            ),
            Some(k) if k.get() == "null" => None,
            Some(k) => Some(Cow::Borrowed(k.get())),
        };
        let event = EventRef {
            index: slow.index,
            time: slow.time,
            process: slow.process,
            kind: slow.kind,
            f: &slow.f,
            key: slow_key.as_deref(),
            value: match slow.value {
                None => ValueRef::Null,
                Some(v) if v.get() == "null" => ValueRef::Null,
                Some(v) => ValueRef::Json(v.get()),
            },
            error: slow.error.as_deref(),
        };
        self.pass(&event, on_event)
    }

    /// Checks the index order and hands the event of line `self.line_no` on.
    fn pass<F>(&mut self, event: &EventRef<'_>, on_event: &mut F) -> Result<(), ReadError>
    where
        F: FnMut(usize, &EventRef<'_>) -> Result<(), HistoryError>,
    {
        let line_no = self.line_no;
        if let Some(prev) = self.last_index {
            if event.index <= prev {
                return Err(ReadError::at(
                    line_no,
                    None,
                    format!(
                        "index {} does not follow {prev}; expected strictly increasing indices in the order events happened",
                        event.index
                    ),
                ));
            }
        }
        self.last_index = Some(event.index);
        on_event(line_no, event).map_err(|e| ReadError::at(e.line, None, e.message))?;
        self.events += 1;
        Ok(())
    }
}

/// A scanner for event lines that commits to an answer only when it is sure serde_json would
/// give the same one: it returns `None` (serde decides) on escapes in names and strings it
/// returns, numbers that are not plain non-negative integers where integers are expected, `\u`
/// escapes anywhere, duplicate or missing fields, nesting deeper than serde's limit, and any
/// JSON it cannot validate. Values are validated, not built: `value` comes back as a slice.
pub(crate) mod fast {
    use super::{EventRef, ValueRef};
    use crate::history::{EventType, Process};

    /// serde_json's recursion limit.
    const DEPTH_MAX: usize = 127;

    /// The leading ASCII digits of eight bytes of text (read little-endian, so the first byte
    /// is the lowest): their value and how many there are (0 to 8), without a loop. A byte is a
    /// digit when its high nibble is 3 and adding 6 keeps it so (`0x30..=0x39`).
    #[inline]
    pub(crate) fn eight_digits(word: u64) -> (u64, usize) {
        const HIGH: u64 = 0xF0F0_F0F0_F0F0_F0F0;
        const THREES: u64 = 0x3030_3030_3030_3030;
        let not_digit =
            ((word & HIGH) ^ THREES) | ((word.wrapping_add(0x0606_0606_0606_0606) & HIGH) ^ THREES);
        // A carry out of a byte of 0xfa or more can only spoil the bytes after it, and that
        // byte is not a digit: the leading run is right.
        let digits = (not_digit.trailing_zeros() / 8) as usize;
        if digits == 0 {
            return (0, 0);
        }
        // Shift the digits to the top; the bytes shifted in are leading zeros.
        let mut v = (word << (8 * (8 - digits))) & 0x0F0F_0F0F_0F0F_0F0F;
        v = v.wrapping_mul(10 * 256 + 1) >> 8;
        v = (v & 0x00FF_00FF_00FF_00FF).wrapping_mul(100 * 65536 + 1) >> 16;
        v = (v & 0x0000_FFFF_0000_FFFF).wrapping_mul(10000 * (1 << 32) + 1) >> 32;
        (v, digits)
    }

    pub(crate) struct Scan<'a> {
        s: &'a str,
        b: &'a [u8],
        i: usize,
    }

    impl<'a> Scan<'a> {
        pub(crate) fn new(s: &'a str) -> Self {
            Scan {
                s,
                b: s.as_bytes(),
                i: 0,
            }
        }

        /// The next non-blank byte, not consumed.
        #[inline]
        pub(crate) fn peek(&mut self) -> Option<u8> {
            self.ws();
            self.b.get(self.i).copied()
        }

        /// True when only blanks remain.
        #[inline]
        pub(crate) fn at_end(&mut self) -> bool {
            self.ws();
            self.i == self.b.len()
        }

        /// Skips blanks. Not newlines: the scanner may run on text past the end of its line
        /// (see [`event_at`]), and a line holds no newline of its own, so this is what serde
        /// does within one line.
        #[inline]
        pub(crate) fn ws(&mut self) {
            while let Some(b' ' | b'\t' | b'\r') = self.b.get(self.i) {
                self.i += 1;
            }
        }

        /// Consumes `word` if the text continues with it, byte for byte (no blanks skipped).
        #[inline]
        pub(crate) fn exactly<const N: usize>(&mut self, word: &[u8; N]) -> bool {
            let found = self
                .b
                .get(self.i..self.i + N)
                .is_some_and(|next| next == word);
            if found {
                self.i += N;
            }
            found
        }

        #[inline]
        pub(crate) fn eat(&mut self, c: u8) -> Option<()> {
            self.ws();
            (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
        }

        /// A string without escapes or control characters; the content, borrowed.
        #[inline]
        pub(crate) fn plain_str(&mut self) -> Option<&'a str> {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            let start = self.i + 1;
            let mut j = start;
            loop {
                match *self.b.get(j)? {
                    b'"' => break,
                    b'\\' | 0..=0x1f => return None,
                    _ => j += 1,
                }
            }
            self.i = j + 1;
            Some(&self.s[start..j])
        }

        /// A plain non-negative integer (no sign, fraction, exponent or leading zero).
        #[inline]
        pub(crate) fn uint(&mut self) -> Option<u64> {
            self.ws();
            let start = self.i;
            // Up to eight digits at once where eight bytes remain (see `eight_digits`), then one
            // at a time.
            let (mut n, mut j) = match self.b.get(start..start + 8) {
                Some(next) => {
                    let word = u64::from_le_bytes(next.try_into().expect("eight bytes"));
                    let (value, digits) = eight_digits(word);
                    (value, start + digits)
                }
                None => (0, start),
            };
            if j - start == 8 || j == start {
                while let Some(&c) = self.b.get(j) {
                    let d = c.wrapping_sub(b'0');
                    if d > 9 {
                        break;
                    }
                    n = n.wrapping_mul(10).wrapping_add(u64::from(d));
                    j += 1;
                }
            }
            let digits = j - start;
            if digits == 0 || (digits > 1 && self.b[start] == b'0') {
                return None;
            }
            if digits >= 20 {
                // 10^19 and more may not fit: do it again, checked.
                n = self.b[start..j].iter().try_fold(0u64, |n, &c| {
                    n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
                })?;
            }
            self.i = j;
            match self.b.get(self.i) {
                Some(b'.' | b'e' | b'E') => None,
                _ => Some(n),
            }
        }

        /// Skips one JSON value, validating it; returns its text.
        pub(crate) fn value(&mut self, depth: usize) -> Option<&'a str> {
            self.ws();
            let start = self.i;
            match *self.b.get(self.i)? {
                b'{' => {
                    if depth >= DEPTH_MAX {
                        return None;
                    }
                    self.i += 1;
                    self.ws();
                    if self.b.get(self.i) == Some(&b'}') {
                        self.i += 1;
                    } else {
                        loop {
                            self.string()?;
                            self.eat(b':')?;
                            self.value(depth + 1)?;
                            self.ws();
                            match *self.b.get(self.i)? {
                                b',' => self.i += 1,
                                b'}' => {
                                    self.i += 1;
                                    break;
                                }
                                _ => return None,
                            }
                        }
                    }
                }
                b'[' => {
                    if depth >= DEPTH_MAX {
                        return None;
                    }
                    self.i += 1;
                    self.ws();
                    if self.b.get(self.i) == Some(&b']') {
                        self.i += 1;
                    } else {
                        loop {
                            self.value(depth + 1)?;
                            self.ws();
                            match *self.b.get(self.i)? {
                                b',' => self.i += 1,
                                b']' => {
                                    self.i += 1;
                                    break;
                                }
                                _ => return None,
                            }
                        }
                    }
                }
                b'"' => self.string()?,
                b't' => self.literal(b"true")?,
                b'f' => self.literal(b"false")?,
                b'n' => self.literal(b"null")?,
                b'-' | b'0'..=b'9' => self.number()?,
                _ => return None,
            }
            Some(&self.s[start..self.i])
        }

        /// `word` (`true`, `false`, `null`), exactly; compared as a fixed-size array, in line.
        #[inline]
        pub(crate) fn literal<const N: usize>(&mut self, word: &[u8; N]) -> Option<()> {
            self.exactly(word).then_some(())
        }

        /// A string with simple escapes (no `\u`), validated.
        #[inline]
        fn string(&mut self) -> Option<()> {
            self.ws();
            if self.b.get(self.i) != Some(&b'"') {
                return None;
            }
            self.i += 1;
            loop {
                match *self.b.get(self.i)? {
                    b'"' => {
                        self.i += 1;
                        return Some(());
                    }
                    b'\\' => match *self.b.get(self.i + 1)? {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => self.i += 2,
                        _ => return None,
                    },
                    0..=0x1f => return None,
                    _ => self.i += 1,
                }
            }
        }

        /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
        fn number(&mut self) -> Option<()> {
            let digits = |sc: &mut Self| {
                let start = sc.i;
                while let Some(b'0'..=b'9') = sc.b.get(sc.i) {
                    sc.i += 1;
                }
                (sc.i > start).then_some(())
            };
            let start = self.i;
            let mut plain = true;
            if self.b.get(self.i) == Some(&b'-') {
                self.i += 1;
            }
            match *self.b.get(self.i)? {
                b'0' => self.i += 1,
                b'1'..=b'9' => digits(self)?,
                _ => return None,
            }
            if self.b.get(self.i) == Some(&b'.') {
                plain = false;
                self.i += 1;
                digits(self)?;
            }
            if let Some(b'e' | b'E') = self.b.get(self.i) {
                plain = false;
                self.i += 1;
                if let Some(b'+' | b'-') = self.b.get(self.i) {
                    self.i += 1;
                }
                digits(self)?;
            }
            // serde_json rejects a number too large for an f64 (`1e309`: "number out of
            // range"); so must the scanner, or the two readers would disagree.
            let text = &self.s[start..self.i];
            let plain = plain && text.len() <= 18;
            if !plain && !text.parse::<f64>().is_ok_and(f64::is_finite) {
                return None;
            }
            Some(())
        }
    }

    /// One event from a whole line (trimmed, no newline), or `None`: serde decides.
    pub(super) fn event(line: &str) -> Option<EventRef<'_>> {
        event_at(line)
            .filter(|&(_, end)| end == line.len())
            .map(|(e, _)| e)
    }

    /// One event from the start of `text`, which may run on past the line: the event and the
    /// position of the newline that ends its line (or the end of `text`). Nothing here skips a
    /// newline, so an event never spans two lines.
    pub(super) fn event_at(text: &str) -> Option<(EventRef<'_>, usize)> {
        let mut sc = Scan {
            s: text,
            b: text.as_bytes(),
            i: 0,
        };
        let event = match canonical(&mut sc) {
            Some(event) => event,
            None => {
                sc.i = 0;
                general(&mut sc)?
            }
        };
        sc.ws();
        match sc.b.get(sc.i) {
            None | Some(b'\n') => Some((event, sc.i)),
            _ => None,
        }
    }

    /// The layout faultline itself writes (`Event`'s field order, no blanks, `time` present):
    /// read by comparing the field names in place rather than scanning and matching them.
    /// Anything else is left to [`general`], which reads this layout identically.
    fn canonical<'a>(sc: &mut Scan<'a>) -> Option<EventRef<'a>> {
        if !sc.exactly(b"{\"index\":") {
            return None;
        }
        let index = sc.uint()?;
        if !sc.exactly(b",\"time\":") {
            return None;
        }
        let time = sc.uint()?;
        if !sc.exactly(b",\"process\":") {
            return None;
        }
        let process = if sc.exactly(b"\"nemesis\"") {
            Process::Nemesis
        } else {
            Process::Client(sc.uint()?)
        };
        if !sc.exactly(b",\"type\":\"") {
            return None;
        }
        let kind = if sc.exactly(b"invoke\"") {
            EventType::Invoke
        } else if sc.exactly(b"ok\"") {
            EventType::Ok
        } else if sc.exactly(b"info\"") {
            EventType::Info
        } else if sc.exactly(b"fail\"") {
            EventType::Fail
        } else {
            return None;
        };
        if !sc.exactly(b",\"f\":") {
            return None;
        }
        let f = sc.plain_str()?;
        let mut key = None;
        if sc.exactly(b",\"key\":") {
            key = match *sc.b.get(sc.i)? {
                b'"' => Some(sc.plain_str()?),
                b'n' => {
                    sc.literal(b"null")?;
                    None
                }
                b'-' | b'0'..=b'9' => {
                    let start = sc.i;
                    sc.number()?;
                    Some(&sc.s[start..sc.i])
                }
                _ => return None,
            };
        }
        let mut value = ValueRef::Null;
        if sc.exactly(b",\"value\":") {
            let v = sc.value(1)?;
            if v != "null" {
                value = ValueRef::Json(v);
            }
        }
        let mut error = None;
        if sc.exactly(b",\"error\":") {
            if sc.b.get(sc.i) == Some(&b'n') {
                sc.literal(b"null")?;
            } else {
                error = Some(sc.plain_str()?);
            }
        }
        if !sc.exactly(b"}") {
            return None;
        }
        Some(EventRef {
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

    /// Any field order, blanks, unknown fields skipped.
    fn general<'a>(sc: &mut Scan<'a>) -> Option<EventRef<'a>> {
        let line = sc.s;
        sc.eat(b'{')?;
        let (mut index, mut time, mut process, mut kind, mut f) = (None, None, None, None, None);
        let (mut key, mut value, mut error) = (None, None, None);
        let mut seen_time = false;
        sc.ws();
        if sc.b.get(sc.i) == Some(&b'}') {
            return None;
        }
        loop {
            let name = sc.plain_str()?;
            sc.eat(b':')?;
            match name {
                "index" if index.is_none() => index = Some(sc.uint()?),
                "time" if !seen_time => {
                    seen_time = true;
                    time = Some(sc.uint()?);
                }
                "process" if process.is_none() => {
                    sc.ws();
                    process = Some(if sc.b.get(sc.i) == Some(&b'"') {
                        match sc.plain_str()? {
                            "nemesis" => Process::Nemesis,
                            _ => return None,
                        }
                    } else {
                        Process::Client(sc.uint()?)
                    });
                }
                "type" if kind.is_none() => {
                    kind = Some(match sc.plain_str()? {
                        "invoke" => EventType::Invoke,
                        "ok" => EventType::Ok,
                        "fail" => EventType::Fail,
                        "info" => EventType::Info,
                        _ => return None,
                    })
                }
                "f" if f.is_none() => f = Some(sc.plain_str()?),
                "key" if key.is_none() => {
                    sc.ws();
                    key = Some(match *sc.b.get(sc.i)? {
                        b'"' => Some(sc.plain_str()?),
                        b'n' => {
                            sc.literal(b"null")?;
                            None
                        }
                        b'-' | b'0'..=b'9' => {
                            let start = sc.i;
                            sc.number()?;
                            Some(&line[start..sc.i])
                        }
                        _ => return None,
                    });
                }
                "value" if value.is_none() => {
                    let v = sc.value(1)?;
                    value = Some(if v == "null" {
                        ValueRef::Null
                    } else {
                        ValueRef::Json(v)
                    });
                }
                "error" if error.is_none() => {
                    sc.ws();
                    error = Some(if sc.b.get(sc.i) == Some(&b'n') {
                        sc.literal(b"null")?;
                        None
                    } else {
                        Some(sc.plain_str()?)
                    });
                }
                "index" | "time" | "process" | "type" | "f" | "key" | "value" | "error" => {
                    return None
                }
                _ => {
                    sc.value(1)?;
                }
            }
            sc.ws();
            match *sc.b.get(sc.i)? {
                b',' => sc.i += 1,
                b'}' => {
                    sc.i += 1;
                    break;
                }
                _ => return None,
            }
        }
        Some(EventRef {
            index: index?,
            time: time.unwrap_or(0),
            process: process?,
            kind: kind?,
            f: f?,
            key: key.flatten(),
            value: value.unwrap_or(ValueRef::Null),
            error: error.flatten(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(text: &str) -> Result<Vec<String>, String> {
        let mut seen = Vec::new();
        for_each_event(text.as_bytes(), |line, e| {
            seen.push(format!(
                "{line}:{}:{}:{}:{}:{:?}:{}:{:?}",
                e.index,
                e.process,
                e.kind,
                e.f,
                e.key,
                e.value.to_value(),
                e.error.unwrap_or("-")
            ));
            Ok(())
        })
        .map_err(|e| e.to_string())?;
        Ok(seen)
    }

    #[test]
    fn reads_borrowed_fields_keys_and_escapes() {
        let got = events(concat!(
            "{\"index\":0,\"time\":5,\"process\":3,\"type\":\"invoke\",\"f\":\"produce\",\"key\":7,\"value\":{\"id\":1}}\n",
            "\n",
            "{\"index\":1,\"process\":3,\"type\":\"info\",\"f\":\"pro\\u0064uce\",\"key\":\"k\\\"1\",\"error\":\"timed-out\"}\n",
            "{\"index\":2,\"process\":\"nemesis\",\"type\":\"info\",\"f\":\"start-partition\",\"key\":null,\"value\":null}",
        ))
        .unwrap();
        assert_eq!(
            got,
            [
                r#"1:0:3:invoke:produce:Some("7"):{"id":1}:"-""#,
                r#"3:1:3:info:produce:Some("k\"1"):null:"timed-out""#,
                r#"4:2:nemesis:info:start-partition:None:null:"-""#,
            ]
        );
    }

    #[test]
    fn the_scanner_and_serde_agree_on_numbers_out_of_range() {
        let huge = format!("1{}", "0".repeat(400));
        for value in [
            "1e309", "-1e309", "1.5e400", "1e-400", "1.25", "12e3", &huge,
        ] {
            let line = format!(
                "{{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"a\",\"value\":{value}}}\n"
            );
            let streamed = events(&line).is_ok();
            let whole =
                crate::formats::read_str(&line, Some(crate::formats::Format::Jsonl)).is_ok();
            assert_eq!(streamed, whole, "{value}: scanner and serde disagree");
            let finite = value.parse::<f64>().unwrap().is_finite();
            assert_eq!(whole, finite, "{value}");
        }
    }

    /// Eight digits at once agree with one at a time, for every length and every byte after.
    #[test]
    fn eight_digits_agree_with_a_loop() {
        let mut texts: Vec<Vec<u8>> = Vec::new();
        for len in 0..=8 {
            for stop in [b',', b'}', b'.', b'/', b':', b'a', 0xfa, 0xff, b'0', b'9'] {
                for seed in [0u64, 7, 123_456_789, 99_999_999] {
                    let mut t: Vec<u8> = format!("{seed:08}").into_bytes()[..len].to_vec();
                    t.push(stop);
                    t.resize(8, b'x');
                    texts.push(t);
                }
            }
        }
        for t in texts {
            let word = u64::from_le_bytes(t[..8].try_into().unwrap());
            let digits = t.iter().take_while(|c| c.is_ascii_digit()).count().min(8);
            let value = t[..digits]
                .iter()
                .fold(0u64, |n, &c| n * 10 + u64::from(c - b'0'));
            assert_eq!(fast::eight_digits(word), (value, digits), "{t:?}");
        }
        // And through the scanner, with numbers longer than eight digits and near 2^64.
        for text in [
            "0",
            "7",
            "12345678",
            "123456789",
            "1234567890123",
            "18446744073709551615",
            "18446744073709551616",
            "99999999999999999999",
            "007",
            "1.5",
            "12e3",
        ] {
            let padded = format!("{text},\"x\":1}}");
            let mut sc = fast::Scan::new(&padded);
            let want = if text.starts_with('0') && text.len() > 1 || text.contains(['.', 'e']) {
                None
            } else {
                text.parse::<u64>().ok()
            };
            assert_eq!(sc.uint(), want, "{text}");
            let mut short = fast::Scan::new(text);
            assert_eq!(short.uint(), want, "{text} alone");
        }
    }

    #[test]
    fn no_events_is_an_empty_history_not_an_error() {
        assert_eq!(events("").unwrap().len(), 0);
        assert_eq!(events("\n\n").unwrap().len(), 0);
    }

    #[test]
    fn bad_lines_name_their_line() {
        let cases = [
            ("{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"a\"}\n{\"index\":0,\"process\":1,\"type\":\"ok\",\"f\":\"a\"}\n", "line 2: index 0 does not follow 0"),
            ("{\"index\":0,\"process\":1,\"type\":\"invoke\"}\n", "line 1, column 39: missing field `f`"),
            ("{\"index\":0,\"process\":1,\"type\":\"done\",\"f\":\"a\"}\n", "line 1, column 36: unknown variant `done`"),
            ("{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"a\"}\n{\"index\":1,\"proc", "line 2, column 16: the line ends mid-event (truncated file?)"),
            ("{\"index\":0,\"process\":-1,\"type\":\"invoke\",\"f\":\"a\"}\n", "line 1, column 23: process -1 is negative"),
        ];
        for (text, want) in cases {
            let got = events(text).unwrap_err();
            assert!(
                got.starts_with(want),
                "{text:?}: got {got:?}, want {want:?}"
            );
        }
    }

    #[test]
    fn callback_errors_stop_the_reading_with_their_line() {
        let text = "{\"index\":0,\"process\":1,\"type\":\"invoke\",\"f\":\"a\"}\n{\"index\":1,\"process\":1,\"type\":\"invoke\",\"f\":\"a\"}\n";
        let err = for_each_event(text.as_bytes(), |line, _| {
            if line == 2 {
                Err(HistoryError {
                    line,
                    message: "nope".into(),
                })
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "line 2: nope");
    }

    /// The fast path either agrees with serde exactly or declines.
    #[test]
    fn the_fast_path_agrees_with_serde_or_declines() {
        let show = |e: &EventRef| {
            format!(
                "{}|{}|{}|{}|{}|{:?}|{:?}|{:?}",
                e.index,
                e.time,
                e.process,
                e.kind,
                e.f,
                e.key,
                match e.value {
                    ValueRef::Null => "null".to_string(),
                    ValueRef::Json(t) => t.to_string(),
                    ValueRef::Tree(v) => v.to_string(),
                },
                e.error
            )
        };
        let accepted = [
            r#"{"index":0,"time":5,"process":3,"type":"invoke","f":"produce","key":7,"value":{"id":1,"partition":"p\n0","x":[1.5e-3,-0,true,false,null,{}]}}"#,
            r#"{ "process" : "nemesis" , "f" : "start-kill", "type":"info", "index" : 12, "other": [[]], "error": null, "value": null }"#,
            r#"{"index":18446744073709551615,"process":1,"type":"fail","f":"a","key":"k","error":"timed-out"}"#,
        ];
        let declined = [
            r#"{"index":0,"process":1,"type":"ok","f":"a\u0062"}"#,
            r#"{"index":0,"process":1,"type":"ok","f":"a","value":"\ud800"}"#,
            r#"{"index":01,"process":1,"type":"ok","f":"a"}"#,
            r#"{"index":1.0,"process":1,"type":"ok","f":"a"}"#,
            r#"{"index":18446744073709551616,"process":1,"type":"ok","f":"a"}"#,
            r#"{"index":0,"process":-1,"type":"ok","f":"a"}"#,
            r#"{"index":0,"index":1,"process":1,"type":"ok","f":"a"}"#,
            r#"{"index":0,"process":1,"type":"done","f":"a"}"#,
            r#"{"index":0,"process":1,"type":"ok"}"#,
            r#"{"index":0,"process":1,"type":"ok","f":"a","value":{"a":01}}"#,
            r#"{"index":0,"process":1,"type":"ok","f":"a","value":[1,]}"#,
            r#"{"index":0,"process":1,"type":"ok","f":"a","value":{"a":1,}}"#,
            r#"{"index":0,"process":1,"type":"ok","f":"a","value":1.}"#,
            r#"{"index":0,"process":1,"type":"ok","f":"a","value":"tab	inside"}"#,
            r#"{"index":0,"process":1,"type":"ok","f":"a","value":tru}"#,
            r#"{"index":0,"process":1,"type":"ok","f":"a"} x"#,
            r#"{"index":0,"process":1,"type":"ok","f":"a","key":[1]}"#,
            r#"{"index":0,"process":1,"type":"ok","f":"a","error":5}"#,
        ];
        for line in accepted {
            let fast = fast::event(line).unwrap_or_else(|| panic!("declined {line}"));
            let mut slow = Vec::new();
            for_each_event(line.as_bytes(), |_, e| {
                slow.push(show(e));
                Ok(())
            })
            .unwrap();
            assert_eq!(show(&fast), slow[0], "{line}");
            let raw: RawEvent = serde_json::from_str(line).unwrap();
            assert_eq!(fast.index, raw.index);
        }
        for line in declined {
            assert!(fast::event(line).is_none(), "accepted {line}");
        }
        // Deep nesting is left to serde.
        let deep = format!(
            r#"{{"index":0,"process":1,"type":"ok","f":"a","value":{}{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert!(fast::event(&deep).is_none());
        assert!(events(&deep).is_ok());
    }

    #[test]
    fn values_parse_into_borrowed_types_from_either_source() {
        #[derive(Deserialize, PartialEq, Debug)]
        struct P<'a> {
            id: &'a str,
        }
        let tree = serde_json::json!({"id": "m1"});
        let raw: &RawValue = serde_json::from_str("{\"id\":\"m1\"}").unwrap();
        assert_eq!(ValueRef::Tree(&tree).parse::<P>().unwrap(), P { id: "m1" });
        assert_eq!(
            ValueRef::Json(raw.get()).parse::<P>().unwrap(),
            P { id: "m1" }
        );
        assert!(ValueRef::Null.parse::<Option<P>>().unwrap().is_none());
    }
}
