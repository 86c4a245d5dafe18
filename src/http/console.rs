//! The owner console's page and assets (11-owner-console.md §5), served at `/owner/`.
//!
//! The files under `console/` are compiled into the binary through the explicit table below:
//! nothing is read from disk at run time, so what was reviewed is what is served, and the unit
//! tests hold the table and the folder equal. The page is one HTML document plus ES modules; the
//! CSP below allows only this origin's scripts and styles and requires Trusted Types, which is
//! why the JS never writes HTML as strings (text reaches the DOM only through Preact).
//!
//! Every `/owner` response — 200, 304, 308 and the 404/405 envelopes — carries
//! [`PAGE_HEADERS`]; [`decorate`] adds them from the secure-headers layer.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

use super::{Out, Req};
use crate::base::error::ErrorCode;
use crate::http::ApiError;
use crate::http::routes::Op;

/// The console's Content-Security-Policy (11-owner-console.md §5), verbatim.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'";

/// Added to every `/owner` response on top of the API's secure headers.
pub(crate) const PAGE_HEADERS: &[(&str, &str)] = &[
    ("Content-Security-Policy", CSP),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
];

/// One embedded file.
struct Asset {
    /// The name under `/owner/assets/` (`index.html` is served at `/owner/` only).
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

const INDEX: Asset =
    Asset { name: "index.html", content_type: HTML, bytes: include_bytes!("../../console/index.html") };

/// Everything under `console/assets/`, by name. Adding a file means adding a line here (the
/// unit test fails until the table and the folder agree).
const ASSETS: &[Asset] = &[
    Asset { name: "api.js", content_type: JS, bytes: include_bytes!("../../console/assets/api.js") },
    Asset { name: "app.js", content_type: JS, bytes: include_bytes!("../../console/assets/app.js") },
    Asset { name: "console.css", content_type: CSS, bytes: include_bytes!("../../console/assets/console.css") },
    Asset { name: "format.js", content_type: JS, bytes: include_bytes!("../../console/assets/format.js") },
    Asset { name: "icon.svg", content_type: SVG, bytes: include_bytes!("../../console/assets/icon.svg") },
    Asset {
        name: "preact-htm-3.1.1.js",
        content_type: JS,
        bytes: include_bytes!("../../console/assets/preact-htm-3.1.1.js"),
    },
    Asset { name: "wallets.js", content_type: JS, bytes: include_bytes!("../../console/assets/wallets.js") },
];

/// `"<first 32 hex of the SHA-256>"` of each asset, index first, computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    std::iter::once(&INDEX)
        .chain(ASSETS)
        .map(|a| format!("\"{}\"", &hex::encode(Sha256::digest(a.bytes))[..32]))
        .collect()
});

/// Whether `path` is the console's (`/owner` or below): such responses get [`PAGE_HEADERS`].
pub(crate) fn is_console_path(path: &str) -> bool {
    path == "/owner" || path.starts_with("/owner/")
}

/// Adds [`PAGE_HEADERS`] to a response for a console path.
pub(crate) fn decorate(out: &mut Out) {
    for (n, v) in PAGE_HEADERS {
        out.set(n, *v);
    }
}

/// `^[a-z0-9][a-z0-9.-]*$`: the only asset names looked up at all.
fn valid_name(name: &str) -> bool {
    name.bytes().next().is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
}

/// The page routes: the redirect, the document and the assets. Anything else → 404.
pub(crate) fn serve(req: &Req) -> Out {
    let found = match req.matched.route.op {
        Op::ConsoleRedirect => {
            let mut out = Out::empty(308);
            out.set("Location", "/owner/");
            return out;
        }
        Op::ConsoleIndex => Some(0),
        Op::ConsoleAsset => {
            let name = req.param("file");
            valid_name(name).then(|| ASSETS.iter().position(|a| a.name == name).map(|i| i + 1)).flatten()
        }
        _ => None,
    };
    let Some(i) = found else {
        let e = ApiError::new(ErrorCode::RouteNotFound, "No such file in the owner console");
        return Out::error(&e, &req.id);
    };
    let asset = if i == 0 { &INDEX } else { &ASSETS[i - 1] };
    let etag = &ETAGS[i];
    let mut out = if req.header("if-none-match").is_some_and(|v| v.split(',').any(|t| t.trim() == etag)) {
        Out::empty(304)
    } else {
        let mut out = Out::empty(200);
        out.body = asset.bytes.to_vec();
        out.set("Content-Type", asset.content_type);
        out
    };
    out.set("ETag", etag.clone());
    out.set("Cache-Control", "no-cache");
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    use super::*;

    fn console_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("console")
    }

    fn text(a: &Asset) -> &'static str {
        std::str::from_utf8(a.bytes).expect("assets are UTF-8")
    }

    // ACC-261: the table equals the files under console/ (extra or missing fails), with the
    // allowed extensions and types.
    #[test]
    fn the_table_equals_the_files_under_console() {
        let mut on_disk: Vec<String> = std::fs::read_dir(console_dir().join("assets"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        on_disk.sort();
        let mut table: Vec<String> = ASSETS.iter().map(|a| a.name.to_string()).collect();
        table.sort();
        assert_eq!(table, on_disk, "console/assets and the table in src/http/console.rs differ");
        let top: Vec<String> = std::fs::read_dir(console_dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n != "assets")
            .collect();
        assert_eq!(top, vec!["index.html".to_string()], "console/ holds only index.html and assets/");
        for a in std::iter::once(&INDEX).chain(ASSETS) {
            let path = if a.name == "index.html" {
                console_dir().join(a.name)
            } else {
                console_dir().join("assets").join(a.name)
            };
            assert_eq!(std::fs::read(&path).unwrap(), a.bytes, "{} is embedded as it is on disk", a.name);
            let ext = a.name.rsplit_once('.').map(|(_, e)| e).unwrap();
            let expected = match ext {
                "html" => HTML,
                "js" => JS,
                "css" => CSS,
                "svg" => SVG,
                other => panic!("{}: .{other} is not an allowed extension", a.name),
            };
            assert_eq!(a.content_type, expected, "{}", a.name);
            assert!(a.name == "index.html" || valid_name(a.name), "{} is a valid asset name", a.name);
        }
    }

    // ACC-261: the vendored Preact + htm is the pinned file.
    #[test]
    fn the_vendored_preact_htm_has_its_pinned_hash() {
        let a = ASSETS.iter().find(|a| a.name == "preact-htm-3.1.1.js").unwrap();
        assert_eq!(a.bytes.len(), 13_194);
        assert_eq!(
            hex::encode(Sha256::digest(a.bytes)),
            "72284e8e9079c87817145df1110f74e8a2aa040b2fc384922e18dfcb46fc1fd7"
        );
    }

    #[test]
    fn the_csp_is_the_specified_string() {
        assert_eq!(
            CSP,
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'; require-trusted-types-for 'script'"
        );
    }

    // ACC-261: no served asset has an inline script, inline style or event-handler attribute
    // (11-owner-console.md §5 "source rules": code only from our own files, no schemes; our JS
    // never writes HTML as a string).
    #[test]
    fn the_sources_follow_the_rules() {
        let index = text(&INDEX).to_ascii_lowercase();
        for (i, _) in index.match_indices("<script") {
            let tag = &index[i..i + index[i..].find('>').unwrap()];
            assert!(
                tag.contains("type=\"module\"") && tag.contains("src=\"assets/"),
                "inline or foreign script: {tag}"
            );
        }
        for (i, _) in index.match_indices("<link") {
            let tag = &index[i..i + index[i..].find('>').unwrap()];
            assert!(tag.contains("href=\"assets/"), "link to a foreign resource: {tag}");
        }
        assert!(!index.contains("<style"), "inline <style>");
        let ours: Vec<&Asset> = std::iter::once(&INDEX)
            .chain(ASSETS.iter().filter(|a| a.name.ends_with(".js") && !a.name.starts_with("preact")))
            .collect();
        for a in &ours {
            let t = text(a);
            for bad in [
                "style=",
                "javascript:",
                "eval(",
                "new Function",
                "innerHTML",
                "dangerouslySetInnerHTML",
                "document.write",
            ] {
                assert!(!t.contains(bad), "{} contains {bad}", a.name);
            }
            // `on…=` attributes: an event handler written as HTML (Preact's `onClick=${…}` is a
            // property binding inside a template, never an attribute in served HTML).
            if a.name.ends_with(".html") {
                assert!(!regexish_on_attribute(t), "{} has an on*= attribute", a.name);
            }
            for line in t.lines() {
                let l = line.trim_start();
                if l.starts_with("import ") {
                    assert!(l.contains("from \"./"), "{}: imports only ./ siblings: {l}", a.name);
                }
                for scheme in ["src=\"http", "href=\"http", "src=\"//", "href=\"//", "from \"http"] {
                    assert!(!l.contains(scheme), "{}: a URL with a scheme: {l}", a.name);
                }
            }
        }
        // The served document and the stylesheet carry no inline style either.
        assert!(!text(ASSETS.iter().find(|a| a.name == "console.css").unwrap()).contains("@import"));
    }

    fn regexish_on_attribute(html: &str) -> bool {
        html.split(|c: char| c.is_whitespace()).any(|w| {
            let w = w.to_ascii_lowercase();
            w.starts_with("on") && w.contains('=') && w[2..w.find('=').unwrap()].chars().all(|c| c.is_ascii_lowercase())
        })
    }

    // ACC-261: the JS and CSS total at most 61,440 bytes gzipped (-9).
    #[test]
    fn the_js_and_css_fit_the_bundle_budget() {
        let mut total = 0;
        for a in ASSETS.iter().filter(|a| a.name.ends_with(".js") || a.name.ends_with(".css")) {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
            gz.write_all(a.bytes).unwrap();
            total += gz.finish().unwrap().len();
        }
        assert!(total <= 61_440, "JS and CSS are {total} bytes gzipped, over the 60 KB budget");
        println!("console JS+CSS gzipped: {total} bytes");
    }

    #[test]
    fn asset_names_are_checked_before_lookup() {
        assert!(valid_name("app.js"));
        assert!(valid_name("preact-htm-3.1.1.js"));
        for bad in ["", "..", ".hidden", "App.js", "a/b", "%2e%2e", "a%2fb", "-x"] {
            assert!(!valid_name(bad), "{bad:?}");
        }
        assert_eq!(ETAGS.len(), ASSETS.len() + 1);
        assert!(ETAGS.iter().all(|e| e.len() == 34 && e.starts_with('"')));
    }
}
