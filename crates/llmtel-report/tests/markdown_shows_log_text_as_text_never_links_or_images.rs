//! Text from the log (user ids, features, models, evaluation names, alert names and labels,
//! quoted malformed lines) shows in a Markdown report as the text it is: never a link, an
//! image fetched by a preview, code, emphasis or strikethrough.
#![allow(clippy::unwrap_used)] // tests unwrap: a panic is the failure report

use llmtel_report::{Period, Report};

/// The characters Markdown gives a meaning inline (and HTML's).
const ACTIVE: &[char] = &['[', ']', '!', '`', '*', '_', '~', '<', '>'];

/// The active characters of `md` that no backslash escapes.
fn unescaped(md: &str) -> Vec<(usize, char)> {
    let mut out = Vec::new();
    let mut backslashes = 0;
    for (i, c) in md.char_indices() {
        if ACTIVE.contains(&c) && backslashes % 2 == 0 {
            out.push((i, c));
        }
        backslashes = if c == '\\' { backslashes + 1 } else { 0 };
    }
    out
}

#[test]
fn log_text_renders_as_plain_text_in_markdown() {
    let link = "[x](javascript:alert(1))";
    let image = "![](https://attacker.example/p.png)";
    let styled = "*bold* _it_ ~~gone~~ `code`";
    let lines = [
        format!(
            r#"{{"kind":"call","time":"2025-06-01T10:00:00Z","model":"gpt_4o*","user":"{link}","feature":"{image}","response_id":"r1","cost_usd":"0.01"}}"#
        ),
        format!(
            r#"{{"kind":"evaluation","time":"2025-06-01T10:00:01Z","name":"{styled}","score":0.5,"response_id":"r1"}}"#
        ),
        format!(
            r#"{{"kind":"alert","time":"2025-06-01T10:00:02Z","name":"{image}","state":"firing","severity":"warning","labels":{{"scope":"{link}"}},"annotations":{{"summary":"{styled}"}},"starts_at":"2025-06-01T10:00:02Z"}}"#
        ),
        // Its error quotes the kind.
        format!(r#"{{"kind":"{image}"}}"#),
    ];
    let report = Report::from_reader(lines.join("\n").as_bytes(), &Period::all()).unwrap();
    assert_eq!(report.totals.requests, 1);
    assert_eq!(report.alerts.events.len(), 1, "{:?}", report.log);
    assert_eq!(report.log.malformed, 1);
    let md = report.to_markdown();

    let bad = unescaped(&md);
    assert!(
        bad.is_empty(),
        "unescaped {:?} in\n{md}",
        bad.iter()
            .map(|&(i, c)| (c, &md[i.saturating_sub(20)..(i + 20).min(md.len())]))
            .collect::<Vec<_>>()
    );
    // The text itself is all there, escaped.
    for shown in [
        r"\[x\](javascript:alert(1))",
        r"\!\[\](https://attacker.example/p.png)",
        r"\*bold\* \_it\_ \~\~gone\~\~ \`code\`",
        r"gpt\_4o\*",
    ] {
        assert!(md.contains(shown), "{shown} missing from\n{md}");
    }
}
