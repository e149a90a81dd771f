//! The set-password page a link opens, and the pages that answer its form.
//!
//! Plain HTML without scripts, rendered by minijinja with HTML auto-escaping, so a hostile
//! query string cannot inject markup. Every page is sent with headers that keep it out of
//! caches, referrers and frames; the content security policy allows nothing but the page's own
//! inline style, pinned by its hash.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use minijinja::{Environment, Value, context};
use password_setup_core::{PasswordPolicy, SetupToken};
use sha2::{Digest as _, Sha256};

use crate::HttpResponse;

const STYLE: &str = "body{font-family:system-ui,sans-serif;line-height:1.5;margin:0;\
background:#f6f7f9;color:#1b1f24}main{max-width:28rem;margin:3rem auto;padding:2rem;\
background:#fff;border-radius:8px;box-shadow:0 1px 3px rgba(0,0,0,.15)}h1{font-size:1.5rem;\
margin-top:0}label{display:block;font-weight:600;margin-top:1rem}input{box-sizing:border-box;\
width:100%;padding:.6rem;font-size:1rem;border:1px solid #8a939e;border-radius:4px}\
button{margin-top:1.5rem;padding:.7rem 1.4rem;font-size:1rem;border:0;border-radius:4px;\
background:#1f5fbf;color:#fff;cursor:pointer}button:focus,input:focus{outline:3px solid #f5a623}\
.problem{color:#a4161a;font-weight:600}";

/// Renders the pages and knows the headers they go out with.
pub struct Pages {
    templates: Environment<'static>,
    security_headers: Vec<(&'static str, String)>,
    policy: PasswordPolicy,
}

impl Pages {
    /// Pages that describe `policy` on the form.
    ///
    /// # Panics
    /// Never: the templates are part of the crate and parsed by its tests.
    pub fn new(policy: PasswordPolicy) -> Self {
        let mut templates = Environment::new();
        for (name, source) in [
            ("form.html", include_str!("templates/form.html")),
            ("outcome.html", include_str!("templates/outcome.html")),
        ] {
            if let Err(error) = templates.add_template(name, source) {
                tracing::error!(%error, "built-in page template does not parse");
            }
        }

        let style_hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        let csp = format!(
            "default-src 'none'; style-src 'sha256-{style_hash}'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'"
        );
        let security_headers = vec![
            ("Content-Type", "text/html; charset=utf-8".to_owned()),
            ("Cache-Control", "no-store".to_owned()),
            ("Referrer-Policy", "no-referrer".to_owned()),
            ("Content-Security-Policy", csp),
            ("X-Content-Type-Options", "nosniff".to_owned()),
            ("X-Frame-Options", "DENY".to_owned()),
        ];
        Self {
            templates,
            security_headers,
            policy,
        }
    }

    /// The form for `token`, optionally with a problem from a previous attempt.
    pub fn form(&self, status: u16, token: &SetupToken, problem: Option<&str>) -> HttpResponse {
        self.render(
            status,
            "form.html",
            context! {
                style => Value::from_safe_string(STYLE.to_owned()),
                token => token.expose_secret(),
                problem => problem,
                min_chars => self.policy.min_chars,
                max_chars => self.policy.max_chars,
            },
        )
    }

    /// A page that ends the flow, in success or failure.
    pub fn outcome(&self, status: u16, heading: &str, message: &str) -> HttpResponse {
        self.render(
            status,
            "outcome.html",
            context! {
                style => Value::from_safe_string(STYLE.to_owned()),
                heading => heading,
                message => message,
                success => status < 400,
            },
        )
    }

    fn render(&self, status: u16, template: &str, values: Value) -> HttpResponse {
        let html = self
            .templates
            .get_template(template)
            .and_then(|template| template.render(values))
            .unwrap_or_else(|error| {
                tracing::error!(%error, template, "page could not be rendered");
                "<!doctype html><title>Error</title><p>Something went wrong.</p>".to_owned()
            });
        HttpResponse {
            status,
            headers: self.security_headers.clone(),
            body: html.into_bytes(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(response: &HttpResponse) -> String {
        String::from_utf8(response.body.clone()).unwrap()
    }

    #[test]
    fn the_form_carries_the_token_the_policy_and_the_right_autocomplete() {
        let pages = Pages::new(PasswordPolicy::default());
        let token = SetupToken::from_submitted("abc-DEF_123");

        let page = pages.form(200, &token, None);
        let html = text(&page);

        assert!(html.contains(r#"name="token" value="abc-DEF_123""#));
        assert_eq!(html.matches(r#"autocomplete="new-password""#).count(), 2);
        assert!(html.contains("8 to 128 characters"));
        assert!(!html.contains("<script"));
    }

    #[test]
    fn hostile_values_are_escaped() {
        let pages = Pages::new(PasswordPolicy::default());
        let token = SetupToken::from_submitted(r#""><script>alert(1)</script>"#);

        let html = text(&pages.form(422, &token, Some("<b>bad</b>")));

        assert!(!html.contains("<script>"));
        assert!(!html.contains("<b>bad</b>"));
        assert!(html.contains("&lt;b&gt;bad&lt;&#x2f;b&gt;") || html.contains("&lt;b&gt;"));
    }

    #[test]
    fn pages_go_out_with_strict_headers_and_the_style_hash_matches() {
        let pages = Pages::new(PasswordPolicy::default());
        let page = pages.outcome(200, "Done", "Your password is set.");
        let header = |name: &str| {
            page.headers
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.clone())
                .unwrap()
        };

        assert_eq!(header("Cache-Control"), "no-store");
        assert_eq!(header("Referrer-Policy"), "no-referrer");
        let csp = header("Content-Security-Policy");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("default-src 'none'"));
        let hash = STANDARD.encode(Sha256::digest(STYLE.as_bytes()));
        assert!(csp.contains(&hash));
        assert!(text(&page).contains(&format!("<style>{STYLE}</style>")));
    }
}
