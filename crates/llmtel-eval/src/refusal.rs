//! Refusal detection.

use super::text::{cut, words};
use super::{EvalInput, Evaluation, SyncEvaluator};

/// Fixed phrases that mark a refusal wherever they appear in the head of the answer (matched
/// case-insensitively, curly apostrophes folded). They complement the first-person rules of
/// [`Refusal`], for refusals worded without "I ... not".
pub const REFUSAL_PHRASES: &[&str] = &[
    "not something i can",
    "not something i'm able to",
    "not something i am able to",
    "beyond what i can",
    "beyond my capabilities",
    "beyond my abilities",
    "outside my capabilities",
    "outside the scope of what i can",
    "against my guidelines",
    "against my policy",
    "against our policy to",
    "as an ai, i can't",
    "as an ai, i cannot",
];

/// Verbs after "I can't / cannot / won't / am unable to" that report a fact rather than
/// decline ("I can't find an order with that number", "I cannot stress enough ...").
const NOT_DECLINING: &[&str] = &[
    "find",
    "see",
    "spot",
    "locate",
    "reproduce",
    "stress",
    "emphasise",
    "emphasize",
    "overstate",
    "wait",
    "believe",
    "imagine",
    "thank",
    "remember",
    "recall",
    "promise",
    "guarantee",
    "tell",
    "say",
    "think",
    "agree",
    "argue",
    "deny",
    "load",
    "connect",
    "reach",
    "match",
    "open",
    "be",
];

/// Verbs after "I don't / do not" that decline ("I don't provide medical advice", "I don't
/// support Klingon"); any other verb ("I don't see a charge") is an answer.
const DECLINING_AFTER_DONT: &[&str] = &[
    "support", "provide", "offer", "give", "share", "do", "create", "write", "generate", "make",
    "help", "assist", "handle", "process", "engage", "disclose", "reveal", "produce", "allow",
    "answer", "discuss", "issue", "book", "access",
];

/// What "I don't have ..." must be followed by to decline: the ability, the permission,
/// access, the authority, the means, the tools or the capability to act.
const LACKING: &[&str] = &[
    "ability",
    "abilities",
    "permission",
    "permissions",
    "access",
    "authority",
    "means",
    "tools",
    "capability",
    "capabilities",
    "rights",
];

/// Adverbs allowed between the negation and the verb ("I really can't help").
const ADVERBS: &[&str] = &[
    "really",
    "actually",
    "currently",
    "directly",
    "personally",
    "legally",
    "safely",
    "ethically",
    "just",
    "yet",
    "simply",
    "unfortunately",
    "myself",
];

/// Refusal detection over the first 400 characters of the answer (quoted text left out, so a
/// quoted button label "I can't access my email" is not the assistant refusing).
///
/// A refusal is, in the first person:
/// - a negated ability or will followed by a verb that acts ("I can't help create ...", "I
///   won't share ...", "I cannot provide ...", "I'm unable to check ...", "I'm not able / allowed
///   / permitted / in a position to advise ...", "I won't be able to write ..."), where verbs
///   that report a fact instead ("I can't find that order", "I cannot stress enough") do not
///   count; "I'm not comfortable ..." too;
/// - "I don't / do not" with a declining verb ("I don't support Klingon", "I don't provide ...")
///   or a lack of ability, permission or access ("I don't have the ability to book", "I do not
///   have permission to issue refunds");
/// - "I must / have to decline", "I refuse", "I'd rather not";
/// - or one of [`REFUSAL_PHRASES`] ("that's not something I can do", "beyond what I can do").
///
/// So partial refusals ("I can summarise it, but I'm not in a position to advise you") and
/// hand-offs that decline the action count, while a "no" on the merits ("that fare isn't
/// refundable", "You can't log in because ...") does not. Score 0 and label `refusal` when
/// found, else score 1 and label `answered`. A refusal is sometimes the right answer: the
/// monitor watches its *rate* per (model, feature).
///
/// ```
/// use llmtel_eval::{EvalInput, Refusal, SyncEvaluator};
/// let said = |a: &str| Refusal.score(&EvalInput::new(a)).map(|e| e.label);
/// assert_eq!(said("I won't share credentials in chat.").as_deref(), Some("refusal"));
/// assert_eq!(said("I can't find an order with that number.").as_deref(), Some("answered"));
/// ```
#[derive(Clone, Debug, Default)]
pub struct Refusal;

/// The head of the answer, lower-cased, apostrophes folded, quoted text removed.
fn head(answer: &str) -> String {
    let lower = cut(answer, 400).to_lowercase().replace(['’', '‘'], "'");
    let mut out = String::with_capacity(lower.len());
    let mut quoted = false;
    for c in lower.chars() {
        if matches!(c, '"' | '“' | '”' | '«' | '»') {
            quoted = !quoted;
            out.push(' ');
        } else if !quoted {
            out.push(c);
        }
    }
    out
}

/// The first-person refusal starting at `w[i]` (`i`, `i'm`, `i'd`), if any.
fn first_person(w: &[String], i: usize) -> Option<&'static str> {
    let at = |k: usize| w.get(i + k).map_or("", String::as_str);
    let mut k = 1;
    let subject = at(0);
    // "i'm" / "i am" / "i'd" ...
    let (be, would) = match subject {
        "i'm" => (true, false),
        "i'd" => (false, true),
        "i" if at(1) == "am" => {
            k = 2;
            (true, false)
        }
        "i" => (false, false),
        _ => return None,
    };
    let acts = |mut k: usize| -> bool {
        while ADVERBS.contains(&at(k)) {
            k += 1;
        }
        let verb = at(k);
        let reports = verb.is_empty()
            || NOT_DECLINING.contains(&verb)
            || (verb == "help" && at(k + 1) == "but")
            || verb.chars().all(|c| c.is_ascii_digit());
        !reports
    };
    if would {
        return (at(k) == "rather" && at(k + 1) == "not" && acts(k + 2))
            .then_some("I'd rather not");
    }
    if be {
        if at(k) == "unable" && at(k + 1) == "to" && acts(k + 2) {
            return Some("I'm unable to");
        }
        if at(k) == "not" && at(k + 1) == "comfortable" {
            return Some("I'm not comfortable");
        }
        if at(k) == "not" {
            let to = match at(k + 1) {
                "able" | "allowed" | "permitted" | "authorised" | "authorized" => k + 2,
                "in" if at(k + 2) == "a" && at(k + 3) == "position" => k + 4,
                _ => return None,
            };
            return (at(to) == "to" && acts(to + 1)).then_some("I'm not able / allowed to");
        }
        return None;
    }
    while ADVERBS.contains(&at(k)) {
        k += 1;
    }
    let negated_modal = match at(k) {
        "can't" | "cannot" | "won't" | "shouldn't" | "mustn't" => Some(k + 1),
        "can" | "will" | "must" if at(k + 1) == "not" => Some(k + 2),
        _ => None,
    };
    if let Some(mut v) = negated_modal {
        if at(v) == "be" && at(v + 1) == "able" && at(v + 2) == "to" {
            v += 3;
        }
        return acts(v).then_some("I can't / won't");
    }
    let dont = match at(k) {
        "don't" => Some(k + 1),
        "do" if at(k + 1) == "not" => Some(k + 2),
        _ => None,
    };
    if let Some(mut v) = dont {
        while ADVERBS.contains(&at(v)) {
            v += 1;
        }
        if at(v) == "have" {
            let mut n = v + 1;
            if matches!(at(n), "the" | "any") {
                n += 1;
            }
            return LACKING
                .contains(&at(n))
                .then_some("I don't have the ability / permission");
        }
        return DECLINING_AFTER_DONT
            .contains(&at(v))
            .then_some("I don't + a declining verb");
    }
    let decline = (at(k) == "must" && at(k + 1) == "decline")
        || (at(k) == "have" && at(k + 1) == "to" && at(k + 2) == "decline");
    if decline {
        return Some("I must decline");
    }
    (at(k) == "refuse").then_some("I refuse")
}

/// Whether `answer` refuses, and the rule or phrase found.
pub(crate) fn refusal_phrase(answer: &str) -> Option<&'static str> {
    let head = head(answer);
    if let Some(p) = REFUSAL_PHRASES.iter().copied().find(|p| head.contains(p)) {
        return Some(p);
    }
    let w = words(&head);
    (0..w.len()).find_map(|i| first_person(&w, i))
}

impl SyncEvaluator for Refusal {
    fn name(&self) -> &str {
        "refusal"
    }

    fn score(&self, input: &EvalInput) -> Option<Evaluation> {
        Some(match refusal_phrase(&input.answer) {
            Some(p) => Evaluation::new("refusal", 0.0, "refusal", format!("declines: \"{p}\"")),
            None => Evaluation::new("refusal", 1.0, "answered", "no refusal found"),
        })
    }
}
