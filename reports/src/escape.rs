//! Escaping for every place a report puts text that came from the system under test.
//!
//! The rule is simple and has no exceptions: values from a history, a results file or a plan
//! (keys, values, errors, checker output, names) reach a page only through these functions.
//! HTML text and attributes get entity escapes; JSON embedded in a `<script>` block gets `<`, `>`
//! and `&` as `\u003c`, `\u003e`, `\u0026` (so neither `</script>` nor `<!--` can appear in it),
//! plus U+2028/U+2029 escaped for old parsers. The page's script then builds DOM nodes with
//! `textContent` only, never `innerHTML`, so nothing a system under test says can become markup.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Appends `s` to `out` escaped for HTML text or a quoted attribute value.
pub fn push_html(out: &mut String, s: &str) {
    let mut last = 0;
    for (i, b) in s.bytes().enumerate() {
        let rep = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        out.push_str(&s[last..i]);
        out.push_str(rep);
        last = i + 1;
    }
    out.push_str(&s[last..]);
}

/// `s` escaped for HTML text or a quoted attribute value.
pub fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    push_html(&mut out, s);
    out
}

/// Makes JSON text safe inside a `<script>` element: `<`, `>`, `&`, U+2028 and U+2029 become
/// `\uXXXX` escapes. Those characters can only occur inside JSON strings, where the escape means
/// the same character, so the result parses to the same value.
pub fn json_for_script(json: &str) -> String {
    let mut out = String::with_capacity(json.len() + json.len() / 64);
    push_json_for_script(&mut out, json);
    out
}

/// Appends `json` to `out`, escaped as [`json_for_script`] does.
pub fn push_json_for_script(out: &mut String, json: &str) {
    let mut last = 0;
    for (i, c) in json.char_indices() {
        let rep = match c {
            '<' => "\\u003c",
            '>' => "\\u003e",
            '&' => "\\u0026",
            '\u{2028}' => "\\u2028",
            '\u{2029}' => "\\u2029",
            _ => continue,
        };
        out.push_str(&json[last..i]);
        out.push_str(rep);
        last = i + c.len_utf8();
    }
    out.push_str(&json[last..]);
}

/// Appends `s` as a JSON string literal that is safe inside a `<script>` element.
pub fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Text for XML 1.0 content or a quoted attribute: entity escapes, and the control characters
/// XML 1.0 cannot carry at all replaced by U+FFFD (a JUnit parser rejects the whole file
/// otherwise).
pub fn xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// Text for a Markdown table cell or list item that GitHub renders: HTML-escaped (GitHub
/// renders inline HTML), pipes and backticks neutralised, newlines folded to spaces.
pub fn markdown_inline(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '|' => out.push_str("\\|"),
            '`' => out.push_str("\\`"),
            '*' | '_' | '[' | ']' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c if (c as u32) < 0x20 => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// At most `max_chars` characters of `s`; a cut is marked with how much was left out.
pub fn truncate(s: &str, max_chars: usize) -> Cow<'_, str> {
    match s.char_indices().nth(max_chars) {
        None => Cow::Borrowed(s),
        Some((cut, _)) => {
            let rest = s[cut..].chars().count();
            Cow::Owned(format!("{}… ({rest} more characters)", &s[..cut]))
        }
    }
}

/// Percent-encodes one path segment for an `href` (the caller HTML-escapes the result too):
/// only unreserved characters (RFC 3986) stay as they are.
pub fn url_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_segments_keep_unreserved_characters_and_encode_the_rest() {
        assert_eq!(url_segment("etcd-register_1.x~"), "etcd-register_1.x~");
        assert_eq!(url_segment("a b/c?\"<"), "a%20b%2Fc%3F%22%3C");
        assert_eq!(url_segment("é"), "%C3%A9");
    }

    #[test]
    fn html_escapes_markup_and_quotes() {
        assert_eq!(
            html(r#"<script>alert("x" & 'y')</script>"#),
            "&lt;script&gt;alert(&quot;x&quot; &amp; &#39;y&#39;)&lt;/script&gt;"
        );
        assert_eq!(html("plain é"), "plain é");
    }

    #[test]
    fn script_json_cannot_close_the_script_and_still_parses() {
        let value = serde_json::json!({"v": "</script><script>alert(1)</script> & \u{2028}"});
        let safe = json_for_script(&value.to_string());
        assert!(!safe.contains('<') && !safe.contains('>') && !safe.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back, value);

        let mut lit = String::new();
        push_json_str(&mut lit, "a\"</script>\n\u{1}\\");
        assert!(!lit.contains('<'));
        let back: String = serde_json::from_str(&lit).unwrap();
        assert_eq!(back, "a\"</script>\n\u{1}\\");
    }

    #[test]
    fn xml_drops_characters_xml_cannot_hold() {
        assert_eq!(
            xml("a\u{0}b<c>\"'&\n"),
            "a\u{FFFD}b&lt;c&gt;&quot;&apos;&amp;\n"
        );
    }

    #[test]
    fn markdown_cells_cannot_break_the_table_or_inject_html() {
        assert_eq!(
            markdown_inline("a|b\n<img src=x>`*"),
            "a\\|b &lt;img src=x&gt;\\`\\*"
        );
    }

    #[test]
    fn truncate_marks_the_cut() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("abcdef", 2), "ab… (4 more characters)");
    }
}
