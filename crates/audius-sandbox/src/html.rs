//! HTML and SVG, written with maud's `html!` templates: every value put in a page is escaped by
//! the template engine, never by hand. Also the page frame and the generated avatars.

use maud::{DOCTYPE, Markup, PreEscaped, Render, html};
use sha3::{Digest, Keccak256};

/// Text put in a page: escaped by maud (`&`, `<`, `>`, `"`), with `'` written `&#39;` as well,
/// so that what the page echoes stays inert whatever quotes surround it.
pub(crate) struct Text<'a>(pub(crate) &'a str);

impl Render for Text<'_> {
    fn render_to(&self, buffer: &mut String) {
        for (i, part) in self.0.split('\'').enumerate() {
            if i > 0 {
                buffer.push_str("&#39;");
            }
            part.render_to(buffer);
        }
    }
}

/// A JSON value written so that it is safe inside an inline `<script>`: `<`, `>`, `&`, U+2028
/// and U+2029 are written as JSON `\u` escapes such as `\u003c` (the value is unchanged for
/// JavaScript).
pub(crate) fn script_json(value: &serde_json::Value) -> String {
    let text = serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned());
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("\\u003c"),
            '>' => out.push_str("\\u003e"),
            '&' => out.push_str("\\u0026"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "\
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;background:#f4f0fa;color:#1f1b24;\
margin:0;display:flex;justify-content:center}\
main{background:#fff;max-width:30rem;width:100%;margin:2rem 1rem;padding:1.5rem 2rem;\
border-radius:12px;box-shadow:0 4px 24px rgba(80,40,120,.12)}\
h1{font-size:1.3rem;color:#7e1bcc}\
.sandbox{font-size:.75rem;text-transform:uppercase;letter-spacing:.08em;color:#a08cb8}\
.detail{color:#555;word-break:break-word}\
fieldset{border:1px solid #e3d8f0;border-radius:8px;padding:.5rem 1rem;margin:1rem 0}\
label.user{display:flex;align-items:center;gap:.6rem;padding:.35rem 0;cursor:pointer}\
label.user img,label.user .noimg{width:32px;height:32px;border-radius:50%;background:#ddd}\
.muted{color:#888;font-size:.85rem}\
.buttons{display:flex;gap:1rem;margin-top:1rem}\
button{flex:1;padding:.7rem;border-radius:8px;border:0;font-size:1rem;cursor:pointer}\
#approve{background:#7e1bcc;color:#fff}#cancel{background:#eee;color:#333}\
code{background:#f3eef8;padding:0 .25em;border-radius:4px;word-break:break-all}";

/// A whole page: `title`, the sandbox's style, and `body`.
pub(crate) fn page(title: &str, body: Markup) -> String {
    html! {
        (DOCTYPE) "\n"
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (Text(title)) }
                style { (PreEscaped(STYLE)) }
            }
            "\n"
            body { "\n" (body) "\n" }
        }
        "\n"
    }
    .into_string()
}

/// The sizes of the avatars served under `/content/<handle>/<size>.svg`.
pub(crate) const PICTURE_SIZES: [(&str, u32); 3] =
    [("150x150", 150), ("480x480", 480), ("1000x1000", 1000)];

/// A generated avatar: a coloured disc with the user's initials; colours from the handle.
/// Written as XML (every element closed), as `image/svg+xml` is parsed.
pub(crate) fn avatar_svg(handle: &str, name: &str, px: u32) -> String {
    let hash = Keccak256::digest(handle.as_bytes());
    let hue = u32::from(u16::from_be_bytes([hash[0], hash[1]])) % 360;
    let hue2 = (hue + 40) % 360;
    let initials: String = name
        .split_whitespace()
        .filter_map(|w| w.chars().next())
        .take(2)
        .flat_map(char::to_uppercase)
        .collect();
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(px) height=(px) viewBox="0 0 100 100"
            role="img" aria-label={ (name) " (@" (handle) ")" } {
            defs {
                linearGradient id="g" x1="0" y1="0" x2="1" y2="1" {
                    stop offset="0" stop-color={ "hsl(" (hue) ",70%,55%)" } {}
                    stop offset="1" stop-color={ "hsl(" (hue2) ",70%,40%)" } {}
                }
            }
            rect width="100" height="100" fill="url(#g)" {}
            text x="50" y="50" dy=".35em" text-anchor="middle" font-family="system-ui,sans-serif"
                font-size="38" fill="#fff" { (initials) }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping() {
        assert_eq!(
            Text(r#"<script>alert("x&'y")</script>"#)
                .render()
                .into_string(),
            "&lt;script&gt;alert(&quot;x&amp;&#39;y&quot;)&lt;/script&gt;"
        );
        let v = serde_json::json!({"s": "</script><!--\u{2028}&"});
        let out = script_json(&v);
        assert!(!out.contains('<') && !out.contains('&') && !out.contains('\u{2028}'));
        let back: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        assert_eq!(back, v);
    }

    #[test]
    fn avatar() {
        let svg = avatar_svg("artist", "Ari Artist", 150);
        assert!(svg.starts_with("<svg") && svg.contains(">AA</text>"));
        assert!(svg.contains("width=\"150\""));
    }
}
