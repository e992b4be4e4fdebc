//! Error types: [`PricingError`] for pricing a call, [`CatalogError`] for loading prices.

use std::fmt;
use std::path::PathBuf;

use crate::Usage;

/// Why a call could not be priced.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum PricingError {
    /// No catalog entry matches the model name, even after prefix, snapshot and Bedrock
    /// normalisation (see [`Catalog::resolve`](crate::Catalog::resolve)).
    #[error(
        "unknown model `{model}`: no price in the catalog. Nearest known: {}. Add it with a price file (see `llmtel prices check`) or Catalog::insert",
        if suggestions.is_empty() { "(none)".to_string() } else { suggestions.join(", ") }
    )]
    UnknownModel {
        /// The model name as given.
        model: String,
        /// Nearest known catalog ids, closest first (see [`Catalog::suggest`](crate::Catalog::suggest)).
        suggestions: Vec<String>,
    },
    /// The cost does not fit in `u128` pico-dollars: the token counts (or rates) are absurd.
    #[error("cost overflows: token counts too large ({0:?})")]
    Overflow(Usage),
}

/// Why a price catalog could not be loaded. A catalog that fails to load is never
/// returned half-loaded.
///
/// The message names the origin (file), line, model entry and field when known, says
/// what is wrong and what to do about it, e.g.
/// `prices.toml:7: model `gpt-4o`, field `price.input`: negative price "-1"; prices are
/// USD per million tokens, write a number >= 0`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    /// The price file could not be read (or is larger than
    /// [`MAX_PRICE_FILE_BYTES`](crate::MAX_PRICE_FILE_BYTES): `ErrorKind::FileTooLarge`).
    #[error("cannot read price file `{}`: {source}. {}", path.display(), io_fix(source))]
    Io {
        /// The path given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A price URL (`LLMTEL_PRICES_URL`) could not be fetched. `url` has no query, user
    /// info or fragment (they may carry tokens).
    #[error("cannot fetch prices from {url}: {problem}; {fix}")]
    Fetch {
        /// The URL, redacted ([`redact_url`](crate::redact_url)).
        url: String,
        /// What went wrong.
        problem: String,
        /// What to do.
        fix: &'static str,
    },
    /// The file is not valid TOML, does not follow the documented format, or holds an
    /// invalid value.
    #[error("{}", InvalidDisplay(self))]
    Invalid {
        /// Where the catalog came from (a file path, `builtin`, `Catalog::insert`, ...).
        origin: String,
        /// 1-based line of the problem in the source, when known.
        line: Option<u32>,
        /// Id of the `[[model]]` entry concerned, when known.
        entry: Option<String>,
        /// Field concerned, as a dotted path inside the entry (`price.input`,
        /// `price.tier.above_input_tokens`), when known.
        field: Option<String>,
        /// What is wrong.
        problem: String,
        /// What to do about it.
        fix: &'static str,
    },
}

impl CatalogError {
    /// A [`CatalogError::Invalid`] (the constructor the catalog parsers share).
    pub(crate) fn invalid(
        origin: &str,
        line: Option<u32>,
        entry: Option<&str>,
        field: Option<&str>,
        problem: String,
        fix: &'static str,
    ) -> Self {
        CatalogError::Invalid {
            origin: origin.to_string(),
            line,
            entry: entry.map(str::to_string),
            field: field.map(str::to_string),
            problem,
            fix,
        }
    }

    /// The 1-based line of the problem, when known.
    pub fn line(&self) -> Option<u32> {
        match self {
            CatalogError::Invalid { line, .. } => *line,
            CatalogError::Io { .. } | CatalogError::Fetch { .. } => None,
        }
    }

    /// The id of the model entry concerned, when known.
    pub fn entry(&self) -> Option<&str> {
        match self {
            CatalogError::Invalid { entry, .. } => entry.as_deref(),
            CatalogError::Io { .. } | CatalogError::Fetch { .. } => None,
        }
    }

    /// The field concerned, when known.
    pub fn field(&self) -> Option<&str> {
        match self {
            CatalogError::Invalid { field, .. } => field.as_deref(),
            CatalogError::Io { .. } | CatalogError::Fetch { .. } => None,
        }
    }
}

struct InvalidDisplay<'a>(&'a CatalogError);

impl fmt::Display for InvalidDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let CatalogError::Invalid {
            origin,
            line,
            entry,
            field,
            problem,
            fix,
        } = self.0
        else {
            return Ok(());
        };
        write!(f, "{origin}")?;
        if let Some(line) = line {
            write!(f, ":{line}")?;
        }
        write!(f, ": ")?;
        match (entry, field) {
            (Some(e), Some(fl)) => write!(f, "model `{e}`, field `{fl}`: ")?,
            (Some(e), None) => write!(f, "model `{e}`: ")?,
            (None, Some(fl)) => write!(f, "field `{fl}`: ")?,
            (None, None) => {}
        }
        write!(f, "{problem}")?;
        if !fix.is_empty() {
            write!(f, "; {fix}")?;
        }
        Ok(())
    }
}

/// What to do about a price file that cannot be read.
fn io_fix(e: &std::io::Error) -> &'static str {
    match e.kind() {
        std::io::ErrorKind::InvalidData => {
            "Save it as UTF-8 text: a TOML price file or LiteLLM's JSON"
        }
        std::io::ErrorKind::FileTooLarge => {
            "Give the path of the price file itself (a TOML price file or LiteLLM's JSON, about 3.5 MB)"
        }
        _ => "Check the path and that the file is readable",
    }
}
