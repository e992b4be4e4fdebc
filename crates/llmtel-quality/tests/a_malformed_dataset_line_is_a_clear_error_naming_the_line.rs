//! Datasets are read from JSONL files; a malformed line, a duplicate id, an empty file or a
//! missing file is a clear error that says where and what to fix, never a panic.
#![allow(clippy::unwrap_used)]

use llmtel_quality::{Dataset, DatasetError};

fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("llmtel-dataset-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn error(text: &str) -> String {
    Dataset::from_reader(text.as_bytes())
        .unwrap_err()
        .to_string()
}

#[test]
fn a_file_is_read_with_every_field() {
    let path = temp_file(
        "ok.jsonl",
        "{\"id\": \"a\", \"input\": \"Q1\", \"expected\": \"A1\", \"context\": [\"doc 1\", \"doc 2\"], \"metadata\": {\"tier\": \"gold\"}}\n\
         \n\
         {\"input\": \"Q2\"}\n",
    );
    let d = Dataset::from_jsonl(&path).unwrap();
    assert_eq!(d.len(), 2);
    let a = &d.examples()[0];
    assert_eq!(
        (a.id.as_str(), a.input.as_str(), a.expected.as_deref()),
        ("a", "Q1", Some("A1"))
    );
    assert_eq!(a.context, ["doc 1", "doc 2"]);
    assert_eq!(a.metadata["tier"], "gold");
    let b = &d.examples()[1];
    assert_eq!(b.id, "line-3", "a blank line still counts as a line");
    assert!(b.expected.is_none() && b.context.is_empty() && b.metadata.is_empty());
}

#[test]
fn malformed_lines_name_the_line_and_the_problem() {
    let ok = "{\"input\": \"fine\"}\n";
    let e = error(&format!("{ok}{{\"input\": \"unterminated}}\n"));
    assert!(
        e.starts_with("dataset line 2: EOF while parsing a string"),
        "{e}"
    );
    assert!(
        e.contains("only `input` is required"),
        "says what a line looks like: {e}"
    );

    let e = error(&format!("{ok}{ok}{{\"expected\": \"x\"}}\n"));
    assert!(
        e.starts_with("dataset line 3: missing field `input`"),
        "{e}"
    );

    let e = error("{\"input\": \"q\", \"expect\": \"typo\"}");
    assert!(
        e.starts_with("dataset line 1: unknown field `expect`"),
        "{e}"
    );

    let e = error("{\"input\": [\"not\", \"a string\"]}");
    assert!(
        e.starts_with("dataset line 1: invalid type: sequence"),
        "{e}"
    );

    let e = error("[1, 2]");
    assert!(e.starts_with("dataset line 1: invalid type"), "{e}");
}

#[test]
fn duplicate_ids_name_both_lines() {
    let e = Dataset::from_reader(
        "{\"id\": \"q1\", \"input\": \"a\"}\n{\"id\": \"q2\", \"input\": \"b\"}\n{\"id\": \"q1\", \"input\": \"c\"}\n"
            .as_bytes(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, DatasetError::DuplicateId { id, first_line: 1, line: 3 } if id == "q1"),
        "{e:?}"
    );
    assert!(e.to_string().contains("ids must be unique"), "{e}");
}

#[test]
fn an_empty_or_missing_file_is_an_error() {
    assert!(matches!(
        Dataset::from_jsonl(temp_file("empty.jsonl", "\n  \n")),
        Err(DatasetError::Empty)
    ));
    let missing = std::env::temp_dir().join("llmtel-no-such-dataset.jsonl");
    let e = Dataset::from_jsonl(&missing).unwrap_err().to_string();
    assert!(
        e.starts_with("cannot read dataset ") && e.contains("llmtel-no-such-dataset.jsonl"),
        "{e}"
    );
}
