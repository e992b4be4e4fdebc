//! Fresh prices without a release: price files and URLs layered over the built-in catalog
//! at start-up (`LLMTEL_PRICES`, `LLMTEL_PRICES_URL`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::{Catalog, CatalogError};

/// Environment variable naming a price file (llmtel TOML or LiteLLM JSON) layered over the
/// built-in catalog.
pub const ENV_PRICES: &str = "LLMTEL_PRICES";
/// Environment variable naming an `https://` URL of a price file, fetched at start-up
/// (needs the `fetch` feature).
pub const ENV_PRICES_URL: &str = "LLMTEL_PRICES_URL";
/// Environment variable: timeout of the `LLMTEL_PRICES_URL` fetch in milliseconds
/// (default [`DEFAULT_FETCH_TIMEOUT`]).
pub const ENV_PRICES_URL_TIMEOUT_MS: &str = "LLMTEL_PRICES_URL_TIMEOUT_MS";
/// Environment variable: a PEM file of CA certificates trusted (in addition to the
/// system's) for `LLMTEL_PRICES_URL`.
pub const ENV_PRICES_URL_CA_FILE: &str = "LLMTEL_PRICES_URL_CA_FILE";
/// Default timeout of a price URL fetch (connect and whole response).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest price file accepted from a URL (LiteLLM's whole table is about 3.5 MB), as
/// [`MAX_PRICE_FILE_BYTES`](crate::MAX_PRICE_FILE_BYTES) for a file.
pub const MAX_FETCH_BYTES: u64 = 32 * 1024 * 1024;

static FAILURES: AtomicU64 = AtomicU64::new(0);
static WARNINGS: AtomicU64 = AtomicU64::new(0);

/// Price sources that failed to load in this process, all [`PriceSources::load`] calls
/// together (each failure also comes back in [`LayeredCatalog::failures`]).
pub fn price_source_failures() -> u64 {
    FAILURES.load(Ordering::Relaxed)
}

/// Parts of loaded price sources left out in this process, all [`PriceSources::load`]
/// calls together (each also comes back in [`LayeredCatalog::warnings`]).
pub fn price_source_warnings() -> u64 {
    WARNINGS.load(Ordering::Relaxed)
}

/// Where prices come from beyond the built-in catalog: a file and/or an https URL, in
/// that order of precedence (the file wins over the URL, both over the built-in
/// catalog). Build it from the environment ([`PriceSources::from_env`]) or by hand.
///
/// ```
/// use llmtel_pricing::PriceSources;
/// // Nothing configured: the built-in catalog, no failure.
/// let layered = PriceSources::default().load();
/// assert!(layered.failures.is_empty());
/// assert!(layered.catalog.get("gpt-4o").is_some());
/// ```
#[derive(Clone, Default)]
pub struct PriceSources {
    file: Option<PathBuf>,
    url: Option<String>,
    timeout: Option<Duration>,
    ca_pem: Vec<Vec<u8>>,
    ca_files: Vec<PathBuf>,
}

impl std::fmt::Debug for PriceSources {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a token: only its redacted form.
        f.debug_struct("PriceSources")
            .field("file", &self.file)
            .field("url", &self.url.as_deref().map(redact_url))
            .field("timeout", &self.timeout)
            .field("ca_pem", &self.ca_pem.len())
            .field("ca_files", &self.ca_files)
            .finish()
    }
}

impl PriceSources {
    /// From `LLMTEL_PRICES`, `LLMTEL_PRICES_URL`, `LLMTEL_PRICES_URL_TIMEOUT_MS` and
    /// `LLMTEL_PRICES_URL_CA_FILE` (empty values are unset).
    pub fn from_env() -> Self {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`PriceSources::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        let get = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let mut s = PriceSources::default();
        if let Some(f) = get(ENV_PRICES) {
            s.file = Some(PathBuf::from(f.trim()));
        }
        if let Some(u) = get(ENV_PRICES_URL) {
            s.url = Some(u.trim().to_string());
        }
        s.timeout = get(ENV_PRICES_URL_TIMEOUT_MS)
            .and_then(|ms| ms.trim().parse::<u64>().ok())
            .map(Duration::from_millis);
        if let Some(ca) = get(ENV_PRICES_URL_CA_FILE) {
            s.ca_files.push(PathBuf::from(ca.trim()));
        }
        s
    }

    /// With a price file (llmtel TOML or LiteLLM JSON).
    pub fn with_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// With an `https://` URL of a price file.
    pub fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    /// With the fetch timeout (default [`DEFAULT_FETCH_TIMEOUT`]).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Also trust these PEM CA certificates for the URL (e.g. a private CA).
    pub fn with_ca_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_pem.push(pem.into());
        self
    }

    /// True when neither a file nor a URL is configured.
    pub fn is_empty(&self) -> bool {
        self.file.is_none() && self.url.is_none()
    }

    /// The built-in catalog with the URL's prices, then the file's, merged over it. Never
    /// fails: a source that cannot be loaded is left out, counted
    /// ([`price_source_failures`]) and returned in [`LayeredCatalog::failures`] with a
    /// message saying what to do; the catalog is then the built-in one with the other
    /// sources. An alias of a source that is another model's id (which
    /// [`Catalog::try_merged_with`], `llmtel prices check` and `--prices` reject) is left
    /// out, the rest of the source applied: counted ([`price_source_warnings`]) and
    /// returned in [`LayeredCatalog::warnings`].
    pub fn load(&self) -> LayeredCatalog {
        let mut catalog = Catalog::builtin().clone();
        let mut layers = Vec::new();
        let mut failures = Vec::new();
        let mut warnings = Vec::new();
        let mut layer =
            |catalog: &mut Catalog, source: Result<Catalog, CatalogError>, origin: String| {
                match source {
                    Ok(c) => {
                        let (merged, left_out) =
                            catalog.merged_without_aliases_naming_a_model(&c, &origin);
                        WARNINGS.fetch_add(left_out.len() as u64, Ordering::Relaxed);
                        warnings.extend(left_out);
                        *catalog = merged;
                        layers.push(origin);
                    }
                    Err(e) => {
                        FAILURES.fetch_add(1, Ordering::Relaxed);
                        failures.push(e);
                    }
                }
            };
        if let Some(url) = &self.url {
            layer(&mut catalog, self.fetch(url), redact_url(url));
        }
        if let Some(path) = &self.file {
            layer(
                &mut catalog,
                Catalog::load(path),
                path.display().to_string(),
            );
        }
        LayeredCatalog {
            catalog,
            layers,
            failures,
            warnings,
        }
    }

    #[cfg(feature = "fetch")]
    fn fetch(&self, url: &str) -> Result<Catalog, CatalogError> {
        use std::io::Read as _;
        let shown = redact_url(url);
        let err = |problem: String, fix: &'static str| CatalogError::Fetch {
            url: shown.clone(),
            problem,
            fix,
        };
        if !url
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
        {
            return Err(err(
                "not an https:// URL".into(),
                "serve the price file over https (prices decide costs and budgets: plain http could be altered on the way)",
            ));
        }
        let timeout = self.timeout.unwrap_or(DEFAULT_FETCH_TIMEOUT);
        let mut builder = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .https_only(true);
        let mut pems = self.ca_pem.clone();
        for f in &self.ca_files {
            // A CA bundle is small: read no further than a price file.
            pems.push(
                crate::catalog::read_at_most(f, crate::MAX_PRICE_FILE_BYTES).map_err(|e| {
                    err(
                        format!("cannot read the CA file {}: {e}", f.display()),
                        "give a readable PEM file in LLMTEL_PRICES_URL_CA_FILE",
                    )
                })?,
            );
        }
        for pem in &pems {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| {
                    err(
                        "the CA holds no PEM certificate".into(),
                        "give PEM certificates (-----BEGIN CERTIFICATE-----)",
                    )
                })?;
            builder = builder.tls_certs_merge(certs);
        }
        let client = builder.build().map_err(|e| {
            err(
                format!("cannot build the https client: {}", error_chain(&e)),
                "check the CA certificates",
            )
        })?;
        let resp = client.get(url).send().map_err(|e| {
            let what = if e.is_timeout() {
                format!("no answer within {} ms", timeout.as_millis())
            } else if e.is_connect() {
                format!("cannot connect: {}", error_chain(&e))
            } else {
                error_chain(&e)
            };
            err(
                what,
                "check that the URL is reachable and its certificate trusted (LLMTEL_PRICES_URL_CA_FILE for a private CA); the built-in prices are used meanwhile",
            )
        })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(err(
                format!("HTTP status {status}"),
                "check the URL serves the price file (llmtel TOML or LiteLLM JSON)",
            ));
        }
        let mut body = String::new();
        resp.take(MAX_FETCH_BYTES + 1)
            .read_to_string(&mut body)
            .map_err(|e| {
                err(
                    format!("reading the response: {e}"),
                    "serve a UTF-8 price file (llmtel TOML or LiteLLM JSON)",
                )
            })?;
        if body.len() as u64 > MAX_FETCH_BYTES {
            return Err(err(
                format!("the price file is larger than {MAX_FETCH_BYTES} bytes"),
                "serve only the price file",
            ));
        }
        let path = std::path::Path::new(shown.split(['?', '#']).next().unwrap_or(""));
        if Catalog::looks_like_json(path, &body) {
            Catalog::from_litellm_json(&body, &shown)
        } else {
            Catalog::from_toml_str(&body, &shown)
        }
    }

    #[cfg(not(feature = "fetch"))]
    fn fetch(&self, url: &str) -> Result<Catalog, CatalogError> {
        Err(CatalogError::Fetch {
            url: redact_url(url),
            problem: "this build cannot fetch price URLs".into(),
            fix: "enable llmtel-pricing's `fetch` feature, or download the file and set LLMTEL_PRICES to its path",
        })
    }
}

/// The result of [`PriceSources::load`].
#[derive(Debug)]
pub struct LayeredCatalog {
    /// The built-in catalog with the sources that loaded merged over it.
    pub catalog: Catalog,
    /// The sources merged, in order (URLs without query, user info or fragment).
    pub layers: Vec<String>,
    /// The sources that failed, each with what to do.
    pub failures: Vec<CatalogError>,
    /// What was left out of sources that loaded (an alias that is another model's id),
    /// each with what to do.
    pub warnings: Vec<CatalogError>,
}

/// `scheme://host[:port]/path` of a URL: no user info, query or fragment (which may carry
/// tokens).
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            // User info ends at the last `@`, wherever it is: a password may hold `/`, `?`
            // or `#` written raw (`https://u:pa/ss@host`), and cutting at those first showed
            // it. (A path or query holding an `@` is shown from after it: less of the URL,
            // never a password.)
            let rest = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            let rest = rest.split(['?', '#']).next().unwrap_or("");
            format!("{scheme}://{rest}")
        }
        None => "(not a URL)".to_string(),
    }
}

#[cfg(feature = "fetch")]
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    // reqwest puts the URL (with any query) in its message: strip it.
    match out.find(" for url (") {
        Some(i) => {
            let end = out[i..].find(')').map_or(out.len(), |j| i + j + 1);
            format!("{}{}", &out[..i], &out[end..])
        }
        None => out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_drops_user_info_query_and_fragment() {
        assert_eq!(
            redact_url("https://user:pw@prices.example.com:8443/p.json?token=abc#x"),
            "https://prices.example.com:8443/p.json"
        );
        assert_eq!(redact_url("nonsense"), "(not a URL)");
        // A password holding `/`, `?` or `#` written raw is never shown.
        for raw in ["pa/ss", "pa?ss", "pa#ss"] {
            let shown = redact_url(&format!("https://u:{raw}@prices.example.com/p.json"));
            assert_eq!(shown, "https://prices.example.com/p.json", "{raw}");
        }
    }
}
